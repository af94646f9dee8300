// Package receiptstest is the conformance suite every receipts.Store passes:
// the embedded store and the S3 store run the same tests.
package receiptstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/receipt/ran"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/core/result/ok"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/receipts"
)

// Run runs the suite. open returns an empty store; it is called once per
// subtest and owns the store's cleanup (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) receipts.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s receipts.Store)
	}{
		{"unknown CIDs are not found", testNotFound},
		{"found by invocation CID and by receipt CID", testRoundTrip},
		{"a second receipt for an invocation is not stored", testWriteOnce},
		{"two receipts for one invocation in one Put keep the first", testWriteOnceSamePut},
		{"storing the same receipt again is fine", testIdempotent},
		{"many receipts in one Put", testMany},
		{"concurrent Puts", testConcurrent},
		{"an empty Put is fine", testEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func testNotFound(t *testing.T, s receipts.Store) {
	ctx := context.Background()
	stored := issue(t, newSigner(t), invoke(t))
	put(t, s, stored)
	other := issue(t, newSigner(t), invoke(t)) // never stored
	for _, cid := range []string{
		other.Ran().Link().String(),
		other.Root().Link().String(),
		"not-a-cid",
		"../" + stored.Ran().Link().String(),
		"",
	} {
		if _, err := s.Get(ctx, cid); !errors.Is(err, receipts.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want receipts.ErrNotFound", cid, err)
		}
	}
}

func testRoundTrip(t *testing.T, s receipts.Store) {
	inv := invoke(t)
	r := issue(t, newSigner(t), inv)
	put(t, s, r)
	for _, cid := range []string{inv.Link().String(), r.Root().Link().String()} {
		got := get(t, s, cid)
		mustBe(t, got, r)
		if got.Ran().Link().String() != inv.Link().String() {
			t.Errorf("Get(%s): receipt ran %s, want invocation %s", cid, got.Ran().Link(), inv.Link())
		}
		// The archive carries the invocation itself, not only its link:
		// GET /receipt/{cid} serves it to clients that want to see what ran.
		if gotInv, ok := got.Ran().Invocation(); !ok || gotInv.Link().String() != inv.Link().String() {
			t.Errorf("Get(%s): the stored receipt does not carry its invocation", cid)
		}
	}
}

func testWriteOnce(t *testing.T, s receipts.Store) {
	inv := invoke(t)
	first := issue(t, newSigner(t), inv)
	second := issue(t, newSigner(t), inv) // another issuer: another receipt CID
	if first.Root().Link().String() == second.Root().Link().String() {
		t.Fatal("test setup: the two receipts have the same CID")
	}
	put(t, s, first)
	put(t, s, second)
	mustBe(t, get(t, s, inv.Link().String()), first)
	mustBe(t, get(t, s, first.Root().Link().String()), first)
	if got, err := s.Get(context.Background(), second.Root().Link().String()); !errors.Is(err, receipts.ErrNotFound) {
		t.Errorf("Get(second receipt's CID) = %v, %v; want receipts.ErrNotFound: the first receipt was kept", rootOf(got), err)
	}
}

func testWriteOnceSamePut(t *testing.T, s receipts.Store) {
	inv := invoke(t)
	first, second := issue(t, newSigner(t), inv), issue(t, newSigner(t), inv)
	put(t, s, first, second)
	mustBe(t, get(t, s, inv.Link().String()), first)
	mustBe(t, get(t, s, rootOf(first)), first)
	if _, err := s.Get(context.Background(), rootOf(second)); !errors.Is(err, receipts.ErrNotFound) {
		t.Errorf("Get(second receipt's CID) = %v, want receipts.ErrNotFound: the first in the Put was kept", err)
	}
}

func testIdempotent(t *testing.T, s receipts.Store) {
	r := issue(t, newSigner(t), invoke(t))
	put(t, s, r)
	put(t, s, r)
	put(t, s, r, r)
	mustBe(t, get(t, s, r.Ran().Link().String()), r)
}

func testMany(t *testing.T, s receipts.Store) {
	issuer := newSigner(t)
	rcpts := make([]receipt.AnyReceipt, 60)
	for i := range rcpts {
		rcpts[i] = issue(t, issuer, invoke(t))
	}
	put(t, s, rcpts...)
	for _, r := range rcpts {
		mustBe(t, get(t, s, r.Ran().Link().String()), r)
		mustBe(t, get(t, s, r.Root().Link().String()), r)
	}
}

func testConcurrent(t *testing.T, s receipts.Store) {
	issuer := newSigner(t)
	shared := issue(t, issuer, invoke(t))
	own := make([]receipt.AnyReceipt, 8)
	var wg sync.WaitGroup
	errs := make(chan error, len(own))
	for i := range own {
		own[i] = issue(t, issuer, invoke(t))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(context.Background(), shared, own[i])
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Put: %v", err)
		}
	}
	mustBe(t, get(t, s, shared.Ran().Link().String()), shared)
	for _, r := range own {
		mustBe(t, get(t, s, r.Root().Link().String()), r)
	}
}

func testEmpty(t *testing.T, s receipts.Store) {
	if err := s.Put(context.Background()); err != nil {
		t.Fatalf("Put() = %v, want nil", err)
	}
}

func put(t *testing.T, s receipts.Store, rcpts ...receipt.AnyReceipt) {
	t.Helper()
	if err := s.Put(context.Background(), rcpts...); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func get(t *testing.T, s receipts.Store, cid string) receipt.AnyReceipt {
	t.Helper()
	r, err := s.Get(context.Background(), cid)
	if err != nil {
		t.Fatalf("Get(%s): %v", cid, err)
	}
	return r
}

// mustBe checks that got is want: the same root CID (so the same bytes) from
// the same issuer.
func mustBe(t *testing.T, got, want receipt.AnyReceipt) {
	t.Helper()
	if rootOf(got) != rootOf(want) {
		t.Fatalf("got receipt %s, want %s", rootOf(got), rootOf(want))
	}
	if got.Issuer().DID() != want.Issuer().DID() {
		t.Fatalf("got receipt issued by %s, want %s", got.Issuer().DID(), want.Issuer().DID())
	}
}

func rootOf(r receipt.AnyReceipt) string {
	if r == nil {
		return "<nil>"
	}
	return r.Root().Link().String()
}

func newSigner(t *testing.T) principal.Signer {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invoke makes a fresh invocation (a random nonce gives it its own CID).
func invoke(t *testing.T) invocation.Invocation {
	t.Helper()
	space := newSigner(t)
	nonce := make([]byte, 8)
	rand.Read(nonce)
	inv, err := invocation.Invoke(space, space,
		ucan.NewCapability("test/echo", space.DID().String(), ucan.NoCaveats{}),
		delegation.WithNonce(hex.EncodeToString(nonce)))
	if err != nil {
		t.Fatalf("invoking: %v", err)
	}
	return inv
}

// issue makes a receipt by issuer for inv, carrying the invocation.
func issue(t *testing.T, issuer principal.Signer, inv invocation.Invocation) receipt.AnyReceipt {
	t.Helper()
	r, err := receipt.Issue(issuer, result.Ok[ok.Unit, ipld.Builder](ok.Unit{}), ran.FromInvocation(inv))
	if err != nil {
		t.Fatalf("issuing receipt: %v", err)
	}
	return r
}

// NewReceipt makes a signed receipt for a fresh invocation, for tests of
// code that stores receipts alongside other things.
func NewReceipt(t *testing.T) receipt.AnyReceipt {
	t.Helper()
	return issue(t, newSigner(t), invoke(t))
}
