// Package revocationstest is the conformance suite every revocations.Store
// passes: the embedded store and the DynamoDB store run the same tests.
package revocationstest

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/revocations"
)

// Run runs the suite. open returns an empty store; it is called once per
// subtest and owns the store's cleanup (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) revocations.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s revocations.Store)
	}{
		{"nothing is revoked at first", testNothingRevoked},
		{"a revocation is found with its scope and cause", testRevokeAndFind},
		{"one lookup answers for many delegations", testManyAtOnce},
		{"several revokers of one delegation", testSeveralScopes},
		{"revoking again keeps the first cause", testRevokeTwice},
		{"a lookup longer than a batch", testLongLookup},
		{"repeated CIDs in a lookup", testRepeatedCIDs},
		{"an incomplete revocation is refused", testIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func testNothingRevoked(t *testing.T, s revocations.Store) {
	got := lookup(t, s, newCID(t), newCID(t))
	if len(got) != 0 {
		t.Errorf("Revocations(unknown CIDs) = %v, want none", got)
	}
	if got := lookup(t, s); len(got) != 0 {
		t.Errorf("Revocations() = %v, want none", got)
	}
}

func testRevokeAndFind(t *testing.T, s revocations.Store) {
	r := revocations.Revocation{Delegation: newCID(t), Scope: newDID(t), Cause: newCID(t)}
	revoke(t, s, r)
	want := []revocations.Revocation{r}
	if got := lookup(t, s, r.Delegation); !equal(got, want) {
		t.Errorf("Revocations(revoked) = %v, want %v", got, want)
	}
	if got := lookup(t, s, newCID(t)); len(got) != 0 {
		t.Errorf("Revocations(another CID) = %v, want none", got)
	}
}

func testManyAtOnce(t *testing.T, s revocations.Store) {
	var chain []string
	for range 5 {
		chain = append(chain, newCID(t))
	}
	a := revocations.Revocation{Delegation: chain[1], Scope: newDID(t), Cause: newCID(t)}
	b := revocations.Revocation{Delegation: chain[4], Scope: newDID(t), Cause: newCID(t)}
	revoke(t, s, a)
	revoke(t, s, b)
	if got, want := lookup(t, s, chain...), []revocations.Revocation{a, b}; !equal(got, want) {
		t.Errorf("Revocations(chain) = %v, want %v", got, want)
	}
	if got := lookup(t, s, chain[0], chain[2], chain[3]); len(got) != 0 {
		t.Errorf("Revocations(unrevoked part of the chain) = %v, want none", got)
	}
}

func testSeveralScopes(t *testing.T, s revocations.Store) {
	dlg := newCID(t)
	space := revocations.Revocation{Delegation: dlg, Scope: newDID(t), Cause: newCID(t)}
	issuer := revocations.Revocation{Delegation: dlg, Scope: newDID(t), Cause: newCID(t)}
	mailto := revocations.Revocation{Delegation: dlg, Scope: "did:mailto:example.com:alice", Cause: newCID(t)}
	web := revocations.Revocation{Delegation: dlg, Scope: "did:web:gateway.example.com", Cause: newCID(t)}
	for _, r := range []revocations.Revocation{space, issuer, mailto, web} {
		revoke(t, s, r)
	}
	want := []revocations.Revocation{space, issuer, mailto, web}
	if got := lookup(t, s, dlg); !equal(got, want) {
		t.Errorf("Revocations = %v, want %v", got, want)
	}
}

func testRevokeTwice(t *testing.T, s revocations.Store) {
	first := revocations.Revocation{Delegation: newCID(t), Scope: newDID(t), Cause: newCID(t)}
	revoke(t, s, first)
	again := first
	again.Cause = newCID(t)
	revoke(t, s, again)
	if got, want := lookup(t, s, first.Delegation), []revocations.Revocation{first}; !equal(got, want) {
		t.Errorf("Revocations after revoking twice = %v, want %v", got, want)
	}
}

func testLongLookup(t *testing.T, s revocations.Store) {
	var cids []string
	for range 250 {
		cids = append(cids, newCID(t))
	}
	var want []revocations.Revocation
	for _, i := range []int{0, 99, 100, 249} {
		r := revocations.Revocation{Delegation: cids[i], Scope: newDID(t), Cause: newCID(t)}
		revoke(t, s, r)
		want = append(want, r)
	}
	if got := lookup(t, s, cids...); !equal(got, want) {
		t.Errorf("Revocations(250 CIDs) = %v, want %v", got, want)
	}
}

func testRepeatedCIDs(t *testing.T, s revocations.Store) {
	r := revocations.Revocation{Delegation: newCID(t), Scope: newDID(t), Cause: newCID(t)}
	revoke(t, s, r)
	other := newCID(t)
	if got, want := lookup(t, s, r.Delegation, other, r.Delegation, other), []revocations.Revocation{r}; !equal(got, want) {
		t.Errorf("Revocations with repeated CIDs = %v, want %v", got, want)
	}
}

func testIncomplete(t *testing.T, s revocations.Store) {
	ctx := context.Background()
	full := revocations.Revocation{Delegation: newCID(t), Scope: newDID(t), Cause: newCID(t)}
	for _, r := range []revocations.Revocation{
		{Scope: full.Scope, Cause: full.Cause},
		{Delegation: full.Delegation, Cause: full.Cause},
		{Delegation: full.Delegation, Scope: full.Scope},
	} {
		if err := s.Revoke(ctx, r); err == nil {
			t.Errorf("Revoke(%+v) succeeded, want an error", r)
		}
	}
	if got := lookup(t, s, full.Delegation); len(got) != 0 {
		t.Errorf("Revocations after refused revocations = %v, want none", got)
	}
}

func revoke(t *testing.T, s revocations.Store, r revocations.Revocation) {
	t.Helper()
	if err := s.Revoke(context.Background(), r); err != nil {
		t.Fatalf("Revoke(%+v): %v", r, err)
	}
}

func lookup(t *testing.T, s revocations.Store, cids ...string) []revocations.Revocation {
	t.Helper()
	got, err := s.Revocations(context.Background(), cids)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	return got
}

// equal compares two sets of revocations, ignoring order.
func equal(a, b []revocations.Revocation) bool {
	key := func(r revocations.Revocation) string { return r.Delegation + " " + r.Scope + " " + r.Cause }
	cmp := func(x, y revocations.Revocation) int { return strings.Compare(key(x), key(y)) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// newCID returns a fresh delegation-shaped CID (CIDv1, DAG-CBOR, SHA2-256).
func newCID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	mh, err := multihash.Sum(b, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.DagCBOR, mh).String()
}

// newDID returns a fresh did:key.
func newDID(t *testing.T) string {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s.DID().String()
}
