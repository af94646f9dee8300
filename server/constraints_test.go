package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// fixed is the caveats a delegation fixes: a subset of resource, bytes and
// servedAt (links and integers only).
type fixed map[string]any

func (f fixed) ToIPLD() (ipld.Node, error) {
	return qp.BuildMap(basicnode.Prototype.Any, int64(len(f)), func(ma datamodel.MapAssembler) {
		for k, v := range f {
			switch v := v.(type) {
			case ipld.Link:
				qp.MapEntry(ma, k, qp.Link(v))
			case int:
				qp.MapEntry(ma, k, qp.Int(int64(v)))
			}
		}
	})
}

// delegateFixed has space grant gateway can on the space with caveats.
func delegateFixed(t *testing.T, space principal.Signer, gateway ucan.Principal, can string, caveats fixed) delegation.Delegation {
	t.Helper()
	caps := []ucan.Capability[ucan.CaveatBuilder]{ucan.NewCapability[ucan.CaveatBuilder](can, space.DID().String(), caveats)}
	dlg, err := delegation.Delegate(space, gateway, caps, delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	return dlg
}

// TestDelegatedCaveatsAreEnforced: a space that fixes bytes or resource in
// the delegation it gives a gateway gets exactly that recorded, nothing else,
// under both capability names; an unconstrained delegation still records
// anything.
func TestDelegatedCaveatsAreEnforced(t *testing.T) {
	h := newHarness(t, nil)
	gateway := newKey(t)
	servedAt := time.Now().Add(-time.Minute)

	for _, can := range []string{capabilities.UsageRecord, capabilities.EgressRecord} {
		t.Run(can, func(t *testing.T) {
			space := h.provision(alice)
			served, other := resourceLink(t, "served "+can), resourceLink(t, "other "+can)
			record := func(resource ipld.Link, bytes int64, proof delegation.Delegation) invocation.Invocation {
				inv, err := client.Invoke(gateway, h.service, client.Record{
					Can: can, Space: space.DID(), Resource: resource, Bytes: bytes, ServedAt: servedAt,
				}, proof)
				if err != nil {
					t.Fatal(err)
				}
				return inv
			}
			bytes100 := delegateFixed(t, space, gateway, can, fixed{"bytes": 100})
			onlyServed := delegateFixed(t, space, gateway, can, fixed{"resource": served})
			open := delegate(t, space, gateway.DID(), []string{can}, time.Time{})

			cases := []struct {
				name    string
				inv     invocation.Invocation
				refused string // what the Unauthorized message names; "" for ok
			}{
				{"bytes 100 under bytes 100", record(served, 100, bytes100), ""},
				{"bytes 101 under bytes 100", record(served, 101, bytes100), "bytes 101 is not the delegated bytes 100"},
				{"the fixed resource", record(served, 5, onlyServed), ""},
				{"another resource", record(other, 5, onlyServed), "is not the delegated resource " + served.String()},
				{"anything under an open delegation", record(other, 987654, open), ""},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					before := h.depth()
					rcpt := h.ucantoExecute(tc.inv)[0]
					if tc.refused == "" {
						mustOK(t, rcpt)
						if h.depth() != before+1 {
							t.Fatalf("queue depth %d, want %d", h.depth(), before+1)
						}
						return
					}
					msg := mustFail(t, rcpt, "Unauthorized")
					if !strings.Contains(msg, tc.refused) {
						t.Fatalf("message does not name the violated constraint %q:\n%s", tc.refused, msg)
					}
					if h.depth() != before {
						t.Fatalf("a refused record was queued: depth %d, want %d", h.depth(), before)
					}
				})
			}
		})
	}
}
