package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server/wire"
)

// capabilityAmplification builds the attack: an invocation by A with one proof
// G (B to A, nCaps copies of space/content/serve/* on S) listing k large
// unsigned UCAN blocks that are not addressed to B.
func capabilityAmplification(t *testing.T, h *harness, nCaps, k, ints int) []byte {
	prefix := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}
	S, A, B, C := newKey(t), newKey(t), newKey(t), newKey(t)
	var fakes [][]byte
	var links []delegation.Proof
	for j := range k {
		data := encodeNode(t, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "v", qp.String("0.9.1"))
			qp.MapEntry(ma, "s", qp.Bytes(signature.NewSignature(signature.EdDSA, make([]byte, 64)).Bytes()))
			qp.MapEntry(ma, "iss", qp.Bytes(C.DID().Bytes()))
			qp.MapEntry(ma, "aud", qp.Bytes(C.DID().Bytes()))
			qp.MapEntry(ma, "exp", qp.Null())
			qp.MapEntry(ma, "att", qp.List(1, func(la datamodel.ListAssembler) {
				qp.ListEntry(la, qp.Map(3, func(cm datamodel.MapAssembler) {
					qp.MapEntry(cm, "with", qp.String(S.DID().String()))
					qp.MapEntry(cm, "can", qp.String("space/content/serve/*"))
					qp.MapEntry(cm, "nb", qp.List(int64(ints), func(nl datamodel.ListAssembler) {
						qp.ListEntry(nl, qp.Int(int64(j+100)))
						for i := 1; i < ints; i++ {
							qp.ListEntry(nl, qp.Int(int64(i%24)))
						}
					}))
				}))
			}))
		})
		id, _ := prefix.Sum(data)
		fakes = append(fakes, data)
		links = append(links, delegation.FromLink(cidlink.Link{Cid: id}))
	}
	caps := make([]ucan.Capability[ucan.CaveatBuilder], nCaps)
	for i := range caps {
		caps[i] = ucan.NewCapability[ucan.CaveatBuilder]("space/content/serve/*", S.DID().String(), ucan.NoCaveats{})
	}
	G, err := delegation.Delegate(B, A, caps, delegation.WithProof(links...), delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	inv := recordFrom(t, A, h.service.DID(), capabilities.EgressRecord, S.DID(), 10, time.Now(), G)
	body, err := client.EncodeMessage([]invocation.Invocation{inv})
	if err != nil {
		t.Fatal(err)
	}
	root, blocks, err := wire.Read(body, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var all [][]byte
	for _, b := range blocks {
		if b.Link().String() == root.String() {
			all = append([][]byte{b.Bytes()}, all...)
		} else {
			all = append(all, b.Bytes())
		}
	}
	all = append(all, fakes...)
	return rawCAR(t, all...)
}

// TestManyCapabilitiesOverBigProofsCannotAmplifyValidation (found in a
// second review): a delegation repeating one capability N times over 30
// large proofs made the validator resolve those proofs once per matching
// capability: a 1.8 MB message cost 87 s at N=200. What validating an
// invocation will decode is now estimated (capabilities times the cost of
// their proofs) and charged to the message's budget: 413 at once.
func TestManyCapabilitiesOverBigProofsCannotAmplifyValidation(t *testing.T) {
	h := newHarness(t, nil)
	for _, n := range []int{50, 200} {
		status, out := post(t, h.http.URL, capabilityAmplification(t, h, n, 30, 60000))
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(out, "MessageLimitExceeded") {
			t.Fatalf("%d capabilities: %d %s, want 413 MessageLimitExceeded", n, status, out)
		}
	}
}
