package billing_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// TestOversizedEventsAreKeptNotBilled runs the worker over events of absurd
// sizes, as a misconfigured gateway or events queued before the server's
// limit would bring: one Stripe cannot take, one that fills the month's
// total to the last byte, one the total cannot take. Each ends in the
// ledger with a state and a reason, only the billable one reaches Stripe,
// and the month's totals stay exact.
func TestOversizedEventsAreKeptNotBilled(t *testing.T) {
	h := newHarness(t, 2*time.Second)
	alice := h.customer(t, "alice", "stripe:cus_alice")
	w := newWorker(t, h.config(h.sink(t, 1000)))

	sized := func(bytes int64) billing.Event {
		return billing.Event{
			Space: "did:key:z6Mkspace", Customer: alice, Resource: "bafkreires", Bytes: bytes,
			ServedAt: time.Now().Add(-time.Minute).Truncate(time.Millisecond), Cause: randomCause(),
		}
	}
	huge, fill, over := sized(math.MaxInt64-10), sized(10), sized(1000)
	h.requeue(t, huge, fill)
	runUntil(t, w, h.settled(t))
	// Twice: a redelivery finds it settled.
	h.requeue(t, over, over)
	runUntil(t, w, h.settled(t))

	entries := h.entries(t, alice)
	for _, tc := range []struct {
		ev     billing.Event
		state  billing.State
		reason string
	}{
		{huge, billing.Unbillable, "Stripe takes at most 15"},
		{fill, billing.Reported, ""},
		{over, billing.Failed, billing.ReasonTotalOverflow},
	} {
		e, ok := entries[tc.ev.Cause]
		if !ok || e.State != tc.state || !strings.Contains(e.Reason, tc.reason) || e.Bytes != tc.ev.Bytes {
			t.Errorf("entry of %d bytes = %+v (found %v); want %s with a reason containing %q", tc.ev.Bytes, e, ok, tc.state, tc.reason)
		}
	}
	got := h.fake.Events()
	if len(got) != 1 || got[fill.Cause].Value != fill.Bytes {
		t.Errorf("Stripe has %+v; want only the %d-byte event", got, fill.Bytes)
	}
	usage, err := h.ledger.Usage(context.Background(), billing.UsageFilter{Month: billing.Month(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 1 || usage[0].Bytes != math.MaxInt64 || usage[0].Events != 3 {
		t.Fatalf("monthly totals = %+v; want %d bytes in 3 events", usage, int64(math.MaxInt64))
	}
}
