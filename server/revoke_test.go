package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/ipld/block"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/revocations"
	"github.com/egressd/egressd/server"
)

// revokingHarness is a harness whose server keeps revocations.
func revokingHarness(t *testing.T) *harness {
	t.Helper()
	data, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	return newHarness(t, func(cfg *server.Config) { cfg.Revocations = data.Revocations })
}

// revokeFrom signs ucan/revoke of target as `with`, sending target (and the
// chain under it) as a proof, the way a JS client does.
func revokeFrom(t *testing.T, issuer principal.Signer, audience did.DID, with string, target delegation.Delegation, proofs ...delegation.Delegation) invocation.IssuedInvocation {
	t.Helper()
	prfs := []delegation.Proof{delegation.FromDelegation(target)}
	for _, p := range proofs {
		prfs = append(prfs, delegation.FromDelegation(p))
	}
	inv, err := capabilities.Revoke.Invoke(issuer, audience, with, capabilities.RevokeCaveats{Ucan: target.Link()},
		delegation.WithProof(prfs...), delegation.WithNonce(randomNonce()))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// mustRevoke checks a revocation succeeded with w3up's {time}.
func mustRevoke(t *testing.T, h *harness, inv invocation.Invocation) {
	t.Helper()
	before := time.Now().Add(-time.Second).UnixMilli()
	ok := mustOK(t, h.ucantoExecute(inv)[0])
	if at := intField(t, ok, "time"); at < before || at > time.Now().Add(time.Second).UnixMilli() {
		t.Fatalf("revocation time %d is not now (Unix milliseconds)", at)
	}
}

// serveDelegation has issuer grant audience space/content/serve/* on space.
func serveDelegation(t *testing.T, issuer principal.Signer, audience did.DID, space did.DID, proofs ...delegation.Delegation) delegation.Delegation {
	t.Helper()
	opts := []delegation.Option{delegation.WithNoExpiration(), delegation.WithNonce(randomNonce())}
	for _, p := range proofs {
		opts = append(opts, delegation.WithProof(delegation.FromDelegation(p)))
	}
	dlg, err := delegation.Delegate(issuer, audience, []ucan.Capability[ucan.CaveatBuilder]{newCapability("space/content/serve/*", space.String())}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return dlg
}

func randomNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// mustBeRevoked checks a record was refused because its chain holds a
// revoked delegation.
func mustBeRevoked(t *testing.T, h *harness, inv invocation.Invocation) {
	t.Helper()
	before := h.depth()
	msg := mustFail(t, h.ucantoExecute(inv)[0], capabilities.RevokedName)
	if !strings.Contains(msg, "has been revoked") {
		t.Errorf("Revoked message %q does not say what was revoked", msg)
	}
	if h.depth() != before {
		t.Fatalf("queue depth %d after a refused record, want %d", h.depth(), before)
	}
}

func TestRevokedDelegationIsRefused(t *testing.T) {
	h := revokingHarness(t)
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*", "usage/*"}, time.Time{})
	// Another delegation of the same space to the same gateway: revocation
	// is of one delegation, not of the gateway.
	other := serveDelegation(t, space, gateway.DID(), space.DID())

	mustOK(t, h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), dlg))[0])

	mustRevoke(t, h, revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg))

	for _, can := range []string{capabilities.EgressRecord, capabilities.UsageRecord} {
		mustBeRevoked(t, h, recordFrom(t, gateway, h.service.DID(), can, space.DID(), 100, time.Now(), dlg))
	}
	mustOK(t, h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), other))[0])
	// The space itself needs no delegation and is not affected.
	mustOK(t, h.ucantoExecute(recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now()))[0])
	// Revoking again is harmless.
	mustRevoke(t, h, revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg))
}

func TestRevocationByAStrangerIsRefused(t *testing.T) {
	h := revokingHarness(t)
	gateway, stranger := newKey(t), newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})

	// As itself: it is nowhere in the chain.
	mustFail(t, h.ucantoExecute(revokeFrom(t, stranger, h.service.DID(), stranger.DID().String(), dlg))[0], capabilities.UnauthorizedRevocationName)
	// As the space, which it cannot prove to be.
	mustFail(t, h.ucantoExecute(revokeFrom(t, stranger, h.service.DID(), space.DID().String(), dlg))[0], "Unauthorized")

	mustOK(t, h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), dlg))[0])
}

// TestWhoCanRevoke runs down a chain space -> A -> B, B recording with
// the delegation A gave it.
func TestWhoCanRevoke(t *testing.T) {
	h := revokingHarness(t)
	cases := []struct {
		name string
		// revoke returns who revokes (as itself) and what.
		revoke  func(space, a, b, stranger principal.Signer, spaceToA, aToB delegation.Delegation) (principal.Signer, delegation.Delegation)
		refused string // the failure of the revocation; "" when it succeeds
	}{
		{"the delegation's issuer", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return a, d2
		}, ""},
		{"the issuer of the delegation above it (the space)", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return space, d2
		}, ""},
		{"the space, of the delegation above", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return space, d1
		}, ""},
		{"the holder, giving it up", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return b, d2
		}, ""},
		{"a stranger", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return s, d2
		}, capabilities.UnauthorizedRevocationName},
		{"a holder below, of the delegation above", func(space, a, b, s principal.Signer, d1, d2 delegation.Delegation) (principal.Signer, delegation.Delegation) {
			return b, d1
		}, capabilities.UnauthorizedRevocationName},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			space := h.provision(alice)
			a, b, stranger := newKey(t), newKey(t), newKey(t)
			spaceToA := serveDelegation(t, space, a.DID(), space.DID())
			aToB := serveDelegation(t, a, b.DID(), space.DID(), spaceToA)
			record := func() invocation.Invocation {
				return recordFrom(t, b, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), aToB)
			}
			mustOK(t, h.ucantoExecute(record())[0])

			revoker, target := tc.revoke(space, a, b, stranger, spaceToA, aToB)
			inv := revokeFrom(t, revoker, h.service.DID(), revoker.DID().String(), target)
			if tc.refused != "" {
				mustFail(t, h.ucantoExecute(inv)[0], tc.refused)
				mustOK(t, h.ucantoExecute(record())[0])
				return
			}
			mustRevoke(t, h, inv)
			mustBeRevoked(t, h, record())
		})
	}
}

// TestRevocationCanBeDelegated: the space lets an agent revoke in its name
// (w3up: "revocation capability can be delegated").
func TestRevocationCanBeDelegated(t *testing.T) {
	h := revokingHarness(t)
	gateway, agent := newKey(t), newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	mayRevoke, err := delegation.Delegate(space, agent, []ucan.Capability[ucan.CaveatBuilder]{newCapability(capabilities.UcanRevoke, space.DID().String())},
		delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	mustRevoke(t, h, revokeFrom(t, agent, h.service.DID(), space.DID().String(), dlg, mayRevoke))
	mustBeRevoked(t, h, recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), dlg))

	// A delegation of ucan/revoke for one delegation revokes that one only.
	other := serveDelegation(t, space, gateway.DID(), space.DID())
	unrelated := serveDelegation(t, space, newKey(t).DID(), space.DID())
	onlyUnrelated, err := delegation.Delegate(space, agent, []ucan.Capability[capabilities.RevokeCaveats]{
		ucan.NewCapability(capabilities.UcanRevoke, space.DID().String(), capabilities.RevokeCaveats{Ucan: unrelated.Link()}),
	}, delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(revokeFrom(t, agent, h.service.DID(), space.DID().String(), other, onlyUnrelated))[0], "Unauthorized")
	mustOK(t, h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), other))[0])
}

func TestRevokeNeedsTheDelegation(t *testing.T) {
	h := revokingHarness(t)
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	inv, err := capabilities.Revoke.Invoke(space, h.service.DID(), space.DID().String(), capabilities.RevokeCaveats{Ucan: dlg.Link()},
		delegation.WithNonce(randomNonce()))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(inv)[0], capabilities.UCANNotFoundName)
	mustOK(t, h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), dlg))[0])
}

// TestRevokedDelegationUnderAnotherCID: a holder sends the revoked
// delegation's very bytes under a CID of its choosing. Nothing else checks
// that blocks hash to their CIDs, so the revocation check must not trust it.
func TestRevokedDelegationUnderAnotherCID(t *testing.T) {
	h := revokingHarness(t)
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	mustRevoke(t, h, revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg))

	mh, err := multihash.Sum([]byte("not the delegation"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	fake := cidlink.Link{Cid: cid.NewCidV1(cid.DagCBOR, mh)}
	nb := capabilities.RecordCaveats{Resource: resourceLink(t, "x"), Bytes: 100, ServedAt: time.Now().UnixMilli()}
	inv, err := capabilities.EgressRecordCapability.Invoke(gateway, h.service.DID(), space.DID().String(), nb,
		delegation.WithProof(delegation.FromLink(fake)), delegation.WithNonce(randomNonce()), delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.Attach(block.NewBlock(fake, dlg.Root().Bytes())); err != nil {
		t.Fatal(err)
	}
	before := h.depth()
	rcpts, err := h.client.Execute(context.Background(), inv)
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusBadRequest:
		// The message decoder refused the mislabelled block: fine too.
		t.Logf("refused: %v", err)
	case err != nil:
		t.Fatal(err)
	default:
		mustFail(t, rcpts[0], capabilities.RevokedName)
	}
	if h.depth() != before {
		t.Fatalf("queue depth %d, want %d: the revoked delegation was accepted", h.depth(), before)
	}
}

// TestRevokedDelegationInItsOtherEncoding: a delegation without proofs has
// two encodings under one signature, "prf" left out or "prf": [], so two
// CIDs. Revoking one revokes both.
func TestRevokedDelegationInItsOtherEncoding(t *testing.T) {
	h := revokingHarness(t)
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	twin := otherEncoding(t, dlg.Root().Bytes())
	if twin.Link().String() == dlg.Link().String() {
		t.Fatal("the two encodings have one CID")
	}
	record := func(proof block.Block) invocation.Invocation {
		nb := capabilities.RecordCaveats{Resource: resourceLink(t, randomNonce()), Bytes: 100, ServedAt: time.Now().UnixMilli()}
		inv, err := capabilities.EgressRecordCapability.Invoke(gateway, h.service.DID(), space.DID().String(), nb,
			delegation.WithProof(delegation.FromLink(proof.Link())), delegation.WithNonce(randomNonce()), delegation.WithNoExpiration())
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.Attach(proof); err != nil {
			t.Fatal(err)
		}
		return inv
	}
	// Both encodings are good proofs...
	mustOK(t, h.ucantoExecute(record(dlg.Root()))[0])
	mustOK(t, h.ucantoExecute(record(twin))[0])
	// ...and neither is, once one is revoked.
	mustRevoke(t, h, revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg))
	mustBeRevoked(t, h, record(twin))
	mustBeRevoked(t, h, record(dlg.Root()))
}

// otherEncoding re-encodes a UCAN block without proofs the other way: with
// "prf": [] when it has no "prf", without "prf" when it has an empty one.
func otherEncoding(t *testing.T, data []byte) block.Block {
	t.Helper()
	nb := basicnode.Prototype.Map.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	n := nb.Build()
	prf, err := n.LookupByString("prf")
	hasPrf := err == nil
	if hasPrf && prf.Length() != 0 {
		t.Fatal("the delegation has proofs")
	}
	twin, err := qp.BuildMap(basicnode.Prototype.Map, n.Length()+1, func(ma datamodel.MapAssembler) {
		for it := n.MapIterator(); !it.Done(); {
			k, v, _ := it.Next()
			if key, _ := k.AsString(); key != "prf" {
				qp.MapEntry(ma, key, qp.Node(v))
			}
		}
		if !hasPrf {
			qp.MapEntry(ma, "prf", qp.List(0, func(datamodel.ListAssembler) {}))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(twin, &buf); err != nil {
		t.Fatal(err)
	}
	mh, err := multihash.Sum(buf.Bytes(), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return block.NewBlock(cidlink.Link{Cid: cid.NewCidV1(cid.DagCBOR, mh)}, buf.Bytes())
}

// failingRevocations is a revocation store that is down.
type failingRevocations struct{}

func (failingRevocations) Revoke(context.Context, revocations.Revocation) error {
	return errors.New("store down")
}

func (failingRevocations) Revocations(context.Context, []string) ([]revocations.Revocation, error) {
	return nil, errors.New("store down")
}

// TestRevocationStoreDown: when the revocations cannot be looked up, neither
// a revocation nor a record goes through, and neither is the caller told it
// was refused: the message fails with 503, for the client to retry.
func TestRevocationStoreDown(t *testing.T) {
	h := newHarness(t, func(cfg *server.Config) { cfg.Revocations = failingRevocations{} })
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	for name, inv := range map[string]invocation.Invocation{
		"revoking":  revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg),
		"recording": recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now(), dlg),
	} {
		_, err := h.client.Execute(context.Background(), inv)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
			t.Errorf("%s with the revocation store down: %v, want HTTP 503", name, err)
		}
	}
	if h.depth() != 0 {
		t.Fatalf("queue depth %d, want 0", h.depth())
	}
}

func TestRevokeIsNotServedWithoutAStore(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	dlg := delegate(t, space, newKey(t).DID(), []string{"space/content/serve/*"}, time.Time{})
	mustFail(t, h.ucantoExecute(revokeFrom(t, space, h.service.DID(), space.DID().String(), dlg))[0], "HandlerNotFound")
}

func TestRevokeRefusesBadInvocations(t *testing.T) {
	h := revokingHarness(t)
	space := h.provision(alice)
	dlg := delegate(t, space, newKey(t).DID(), []string{"space/content/serve/*"}, time.Time{})
	// Addressed to another service.
	mustFail(t, h.ucantoExecute(revokeFrom(t, space, newKey(t).DID(), space.DID().String(), dlg))[0], "InvalidAudience")
	// No nb.ucan.
	inv, err := capabilities.Revoke.Invoke(space, h.service.DID(), space.DID().String(), capabilities.RevokeCaveats{},
		delegation.WithProof(delegation.FromDelegation(dlg)))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(inv)[0], "MalformedCapability")
	// nb.proof naming a delegation that was not sent.
	missing := []ipld.Link{resourceLink(t, "missing")}
	inv, err = capabilities.Revoke.Invoke(space, h.service.DID(), space.DID().String(), capabilities.RevokeCaveats{Ucan: dlg.Link(), Proof: missing},
		delegation.WithProof(delegation.FromDelegation(dlg)))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(inv)[0], capabilities.UCANNotFoundName)
}

// TestInfoListsRevokeWhenServed: GET / names ucan/revoke only when the
// server keeps revocations.
func TestInfoListsRevokeWhenServed(t *testing.T) {
	record := []string{capabilities.UsageRecord, capabilities.EgressRecord}
	for _, c := range []struct {
		h    *harness
		want []string
	}{
		{newHarness(t, nil), record},
		{revokingHarness(t), append(record, capabilities.UcanRevoke)},
	} {
		info, err := c.h.client.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(info.Capabilities, " ") != strings.Join(c.want, " ") {
			t.Errorf("GET / capabilities = %v, want %v", info.Capabilities, c.want)
		}
	}
}
