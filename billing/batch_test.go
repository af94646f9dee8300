package billing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// TestHotCustomerIsBilledInBatches is one busy customer against a Stripe
// answering in 100 ms, one call at a time per customer: every event must be
// billed, the value exact, without a single 429, and in far fewer calls than
// events, because the events that pile up while a call is in flight go out
// together in the next batch.
func TestHotCustomerIsBilledInBatches(t *testing.T) {
	h := newHarness(t, 5*time.Second)
	h.fake.SetDelay(100 * time.Millisecond)
	c := h.customer(t, "hot", "stripe:cus_hot")
	const n = 3000
	h.enqueue(t, c, n)
	cfg := h.config(h.sink(t, 1000))
	cfg.Batch = 100
	runUntil(t, newWorker(t, cfg), h.settled(t))

	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_hot"})
	if got := h.fake.RateLimited(); len(got) != 0 {
		t.Errorf("Stripe answered %d calls with 429: %+v", len(got), got[0])
	}
	if got := h.fake.MaxInFlightPerCustomer(); got != 1 {
		t.Errorf("Stripe saw %d calls at once for the customer, it allows 1", got)
	}
	if calls := h.fake.Calls(); calls > n/20 {
		t.Errorf("%d calls for %d events: the events were not gathered into batches", calls, n)
	}
	t.Logf("%d events in %d batches, %d calls", n, h.batches(t), h.fake.Calls())
}

// TestLateEventsFormTheNextBatchOfTheirWindow: events arriving for a window
// already sent go out as a new batch of that window, under a new identifier,
// and Stripe's total is exact.
func TestLateEventsFormTheNextBatchOfTheirWindow(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	c := h.customer(t, "alice", "stripe:cus_alice")
	accounts := map[string]string{c: "stripe:cus_alice"}
	w := newWorker(t, h.config(h.sink(t, 1000)))

	h.enqueue(t, c, 5)
	runUntil(t, w, h.settled(t))
	if got := h.batches(t); got != 1 {
		t.Fatalf("5 events of one window in %d batches, want 1", got)
	}
	h.enqueue(t, c, 3) // same window (a minute ago, as the harness serves them)
	runUntil(t, w, h.settled(t))
	h.checkExactlyOnce(t, accounts)
	if got := h.batches(t); got != 2 {
		t.Fatalf("%d batches, want the first and the late one", got)
	}
	var total int64
	for _, ev := range h.expected {
		total += ev.Bytes
	}
	if got := h.fake.Totals()["cus_alice"]; got != total {
		t.Errorf("Stripe bills %d, the events add up to %d", got, total)
	}
}

// TestEveryEventIsInOneBatchAndBillingListShowsIt: each entry names its
// batch, and the batch's members add up to what Stripe holds for it.
func TestEveryEventIsInOneBatch(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.spread = 20 * time.Second
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 30)
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
	for cause, e := range h.entries(t, c) {
		b, err := h.ledger.Batch(context.Background(), e.Batch)
		if err != nil {
			t.Fatalf("batch %s of %s: %v", e.Batch, cause, err)
		}
		if b.State != billing.Reported || billing.WindowOf(b.Timestamp, time.Minute) != billing.WindowOf(e.ServedAt, time.Minute) {
			t.Errorf("batch %+v of entry %+v: not reported, or not in the entry's window", b, e)
		}
	}
}

// TestV2StreamsAcrossSessionExpiry bills many customers on the v2 meter
// event stream while sessions expire every few requests: the value must be
// exact, no identifier sent twice into Stripe's count, and far fewer
// requests than events.
func TestV2StreamsAcrossSessionExpiry(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.fake.SetSessionLifetime(50 * time.Millisecond)
	h.fake.SetDelay(5 * time.Millisecond)
	accounts := map[string]string{}
	for i := range 40 {
		name := fmt.Sprint("c", i)
		c := h.customer(t, name, "stripe:cus_"+name)
		accounts[c] = "stripe:cus_" + name
		h.enqueue(t, c, 50)
	}
	cfg := h.config(h.sinkAPI(t, "v2", 1000))
	cfg.Batch = 100
	runUntil(t, newWorker(t, cfg), h.settled(t))

	h.checkExactlyOnce(t, accounts)
	events := len(h.expected)
	streams := h.fake.Requests(stripetest.StreamEndpoint)
	sessions := h.fake.Requests(stripetest.SessionEndpoint)
	if streams*20 >= events {
		t.Errorf("%d stream requests for %d events, want fewer than events/20", streams, events)
	}
	if sessions < 2 {
		t.Errorf("%d sessions: none expired during the run, the test proves nothing", sessions)
	}
	for _, me := range h.fake.Accepted() {
		if !me.Stream {
			t.Errorf("meter event %s went through v1", me.Identifier)
		}
	}
	t.Logf("%d events, %d stream requests, %d sessions", events, streams, sessions)
}
