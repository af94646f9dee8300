package capabilities

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	"github.com/storacha/go-ucanto/principal/ed25519/verifier"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// nb is the caveats of a delegation: only those it fixes, of any kind.
type nb map[string]any

func (n nb) ToIPLD() (ipld.Node, error) {
	return qp.BuildMap(basicnode.Prototype.Any, int64(len(n)), func(ma datamodel.MapAssembler) {
		for k, v := range n {
			switch v := v.(type) {
			case int:
				qp.MapEntry(ma, k, qp.Int(int64(v)))
			case int64:
				qp.MapEntry(ma, k, qp.Int(v))
			case string:
				qp.MapEntry(ma, k, qp.String(v))
			case ipld.Link:
				qp.MapEntry(ma, k, qp.Link(v))
			case nil:
				qp.MapEntry(ma, k, qp.Null())
			default:
				panic(fmt.Sprintf("nb: unsupported %T", v))
			}
		}
	})
}

func node(t *testing.T, n nb) ipld.Node {
	t.Helper()
	nd, err := n.ToIPLD()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

func link(t testing.TB, s string) ipld.Link {
	t.Helper()
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}
}

func TestCheckDelegatedCaveats(t *testing.T) {
	served := link(t, "served")
	claimed := RecordCaveats{Resource: served, Bytes: 100, ServedAt: 1_700_000_000_000}
	cases := []struct {
		name      string
		delegated any
		refused   string // a part of the error, "" when allowed
	}{
		{"no nb", nil, ""},
		{"empty nb", node(t, nb{}), ""},
		{"nb of another capability (authToken)", node(t, nb{"authToken": "secret"}), ""},
		{"nb that is not a map", basicnode.NewString("anything"), ""},
		{"same bytes", node(t, nb{"bytes": 100}), ""},
		{"more bytes than delegated", node(t, nb{"bytes": 99}), "bytes 100 is not the delegated bytes 99"},
		{"fewer bytes than delegated", node(t, nb{"bytes": 101}), "bytes 100 is not the delegated bytes 101"},
		{"same resource", node(t, nb{"resource": served}), ""},
		{"another resource", node(t, nb{"resource": link(t, "other")}), "is not the delegated resource"},
		{"same servedAt", node(t, nb{"servedAt": 1_700_000_000_000}), ""},
		{"another servedAt", node(t, nb{"servedAt": 1_700_000_000_001}), "servedAt 1700000000000 is not the delegated servedAt 1700000000001"},
		{"all three equal", node(t, nb{"resource": served, "bytes": 100, "servedAt": 1_700_000_000_000}), ""},
		{"two equal, one not", node(t, nb{"resource": served, "bytes": 100, "servedAt": 1}), "servedAt"},
		{"bytes as a string", node(t, nb{"bytes": "100"}), "bytes constraint is not an integer"},
		{"bytes null", node(t, nb{"bytes": nil}), "bytes constraint is not an integer"},
		{"resource as a string", node(t, nb{"resource": served.String()}), "resource constraint is not a CID link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDelegatedCaveats(claimed, tc.delegated)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatalf("allowed, want refused with %q", tc.refused)
			case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("refused with %q, want %q", err, tc.refused)
			}
		})
	}
}

// grant is one delegation: can on the space, with caveats, to audience.
func grant(t *testing.T, issuer principal.Signer, audience ucan.Principal, with, can string, caveats nb, proofs ...delegation.Delegation) delegation.Delegation {
	t.Helper()
	opts := []delegation.Option{delegation.WithNoExpiration()}
	for _, p := range proofs {
		opts = append(opts, delegation.WithProof(delegation.FromDelegation(p)))
	}
	caps := []ucan.Capability[ucan.CaveatBuilder]{ucan.NewCapability[ucan.CaveatBuilder](can, with, caveats)}
	dlg, err := delegation.Delegate(issuer, audience, caps, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return dlg
}

func newSigner(t *testing.T) principal.Signer {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// access runs the ucanto validator the way the server does, for one
// invocation of parser by issuer on space, carrying proofs.
func access(t *testing.T, parser validator.CapabilityParser[RecordCaveats], service, issuer principal.Signer, space string, c RecordCaveats, proofs ...delegation.Delegation) error {
	t.Helper()
	var opts []delegation.Option
	for _, p := range proofs {
		opts = append(opts, delegation.WithProof(delegation.FromDelegation(p)))
	}
	inv, err := parser.Invoke(issuer, service, space, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	vctx := validator.NewValidationContext(
		service.Verifier(), parser, validator.IsSelfIssued,
		func(context.Context, validator.Authorization[any]) validator.Revoked { return nil },
		validator.ProofUnavailable,
		func(s string) (principal.Verifier, error) { return verifier.Parse(s) },
		validator.FailDIDKeyResolution, validator.NotExpiredNotTooEarly,
	)
	auth, aerr := validator.Access(context.Background(), inv, vctx)
	if aerr != nil {
		return aerr
	}
	if got := auth.Capability().Nb(); got.Bytes != c.Bytes || got.Resource.String() != c.Resource.String() {
		t.Fatalf("authorized caveats %+v, want %+v", got, c)
	}
	return nil
}

// TestDelegatedCaveatsBindTheGateway runs whole proof chains through the
// validator, for both capability names: what a delegation fixes holds, what
// it leaves open stays open, and ability wildcards keep working.
func TestDelegatedCaveatsBindTheGateway(t *testing.T) {
	for _, can := range []string{UsageRecord, EgressRecord} {
		t.Run(can, func(t *testing.T) {
			parser := RecordParsers[can]
			namespace := "usage/*"
			if can == EgressRecord {
				namespace = "space/content/serve/*"
			}
			service, space, gw, gw2 := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
			sp := space.DID().String()
			served, other := link(t, "served"), link(t, "other")
			record := func(bytes int64, resource ipld.Link) RecordCaveats {
				return RecordCaveats{Resource: resource, Bytes: bytes, ServedAt: 1_700_000_000}
			}
			bytes100 := grant(t, space, gw, sp, can, nb{"bytes": 100})
			onlyServed := grant(t, space, gw, sp, can, nb{"resource": served})
			open := grant(t, space, gw2, sp, can, nb{})

			cases := []struct {
				name    string
				issuer  principal.Signer
				claim   RecordCaveats
				proofs  []delegation.Delegation
				refused bool
			}{
				{"bytes as delegated", gw, record(100, served), []delegation.Delegation{bytes100}, false},
				{"one byte more than delegated", gw, record(101, served), []delegation.Delegation{bytes100}, true},
				{"one byte less than delegated", gw, record(99, served), []delegation.Delegation{bytes100}, true},
				{"the delegated resource", gw, record(7, served), []delegation.Delegation{onlyServed}, false},
				{"another resource", gw, record(7, other), []delegation.Delegation{onlyServed}, true},
				{"both constraints, one broken", gw, record(100, other), []delegation.Delegation{grant(t, space, gw, sp, can, nb{"bytes": 100, "resource": served})}, true},
				{"a constraint of the wrong kind", gw, record(100, served), []delegation.Delegation{grant(t, space, gw, sp, can, nb{"bytes": "100"})}, true},
				{"an unconstrained delegation", gw2, record(12345, other), []delegation.Delegation{open}, false},
				{"a constrained and an open proof", gw, record(101, other), []delegation.Delegation{bytes100, grant(t, space, gw, sp, can, nb{})}, false},
				{"*", gw, record(1, other), []delegation.Delegation{grant(t, space, gw, sp, "*", nil)}, false},
				{namespace, gw, record(1, other), []delegation.Delegation{grant(t, space, gw, sp, namespace, nil)}, false},
				{namespace + " with an authToken", gw, record(1, other), []delegation.Delegation{grant(t, space, gw, sp, namespace, nb{"authToken": "secret"})}, false},
				{namespace + " fixing bytes", gw, record(101, other), []delegation.Delegation{grant(t, space, gw, sp, namespace, nb{"bytes": 100})}, true},
				// space -> gw (bytes 100) -> gw2 (open): the first link still binds.
				{"re-delegated without the constraint", gw2, record(101, served), []delegation.Delegation{grant(t, gw, gw2, sp, can, nil, bytes100)}, true},
				{"re-delegated, within the constraint", gw2, record(100, served), []delegation.Delegation{grant(t, gw, gw2, sp, can, nil, bytes100)}, false},
				// space -> gw2 (open) -> gw (resource fixed): the last link binds.
				{"narrowed on re-delegation", gw, record(5, other), []delegation.Delegation{grant(t, gw2, gw, sp, can, nb{"resource": served}, open)}, true},
				{"the space itself, no proof", space, record(999, other), nil, false},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := access(t, parser, service, tc.issuer, sp, tc.claim, tc.proofs...)
					if !tc.refused {
						if err != nil {
							t.Fatalf("refused: %v", err)
						}
						return
					}
					if err == nil {
						t.Fatal("authorized, want Unauthorized")
					}
					f := FromError(err)
					if f.Name() != "Unauthorized" || !strings.Contains(f.Message, "Constraint violation") {
						t.Fatalf("got %s: %s, want Unauthorized naming the violated constraint", f.Name(), f.Message)
					}
				})
			}
		})
	}
}
