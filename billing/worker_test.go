package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// faultEvery injects each fault on every k-th call, cycling through all the
// ways Stripe (or the network to it) fails.
func faultEvery(n int, _ stripetest.MeterEvent) stripetest.Fault {
	switch {
	case n%7 == 1:
		return stripetest.TooManyRequests
	case n%11 == 2:
		return stripetest.ServerError
	case n%13 == 3:
		return stripetest.ServerErrorAfter
	case n%17 == 4:
		return stripetest.DropBefore
	case n%19 == 5:
		return stripetest.DropAfter
	case n%23 == 6:
		return stripetest.SlowAfter // longer than the client's timeout
	}
	return stripetest.None
}

// TestExactlyOnceThroughFaults sends events of several customers, with
// duplicates on the queue, through a Stripe that fails in every way it can,
// and checks that Stripe counts each event exactly once, the totals match,
// duplicates cost no Stripe call and no customer ever has two calls open.
func TestExactlyOnceThroughFaults(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.spread = 15 * time.Second // about four events a window: many batches
	h.fake.SetFault(faultEvery)
	h.fake.SetDelay(2 * time.Millisecond)
	h.fake.SetSlowDelay(time.Second)

	accounts := map[string]string{}
	var all []billing.Event
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		c := h.customer(t, name, "stripe:cus_"+name)
		accounts[c] = "stripe:cus_" + name
		all = append(all, h.enqueue(t, c, 40)...)
	}
	// Duplicates: some right behind the original, some much later.
	h.requeue(t, all[:20]...)
	h.requeue(t, all[150:170]...)
	const duplicates = 40

	sink := watch(h.sink(t, 1000))
	cfg := h.config(sink)
	runUntil(t, newWorker(t, cfg), h.settled(t))

	h.checkExactlyOnce(t, accounts)
	if n := h.count(t, billing.Reported); n != int64(len(all)) {
		t.Errorf("%d entries reported, want %d", n, len(all))
	}
	if got := sink.maxPerCustomer(); got != 1 {
		t.Errorf("the worker had %d calls open for one customer, Stripe allows 1", got)
	}

	reg := cfg.Registry
	ok := metric(t, reg, "egressd_billing_sink_charges_total", "outcome", "ok")
	retried := metric(t, reg, "egressd_billing_sink_charges_total", "outcome", "retryable")
	if batches := h.batches(t); ok != float64(batches) {
		t.Errorf("%v successful Stripe calls, want one per batch (%d): duplicates must not call Stripe", ok, batches)
	}
	// Go's HTTP transport silently re-sends a request that carries an
	// Idempotency-Key once when a kept-alive connection turns out dead, so
	// Stripe may see a few more requests than the worker made calls.
	if int(ok+retried) > h.fake.Calls() {
		t.Errorf("metrics count %v calls, Stripe saw only %d", ok+retried, h.fake.Calls())
	}
	if retried == 0 {
		t.Error("no call failed: the faults were not injected")
	}
	// More is fine: on a loaded machine a lease can run out and a message
	// come back, to be recognised as a duplicate too.
	// A duplicate is acknowledged either as one (its event was settled
	// already) or with its batch, when both copies came in one round.
	acked := metric(t, reg, "egressd_billing_events_total", "state", "duplicate") + metric(t, reg, "egressd_billing_events_total", "state", "reported")
	if acked < float64(len(all)+duplicates) {
		t.Errorf("%v messages acknowledged, want at least %d events and %d duplicates", acked, len(all), duplicates)
	}
	t.Logf("%d events in %d batches, %d Stripe calls with injected faults", len(all), h.batches(t), h.fake.Calls())
}

// TestOneCallPerCustomerAtATime checks, from Stripe's side, that the worker
// reports customers concurrently but never has two calls open for one.
func TestOneCallPerCustomerAtATime(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.spread = time.Minute // one event a window: a call each
	h.fake.SetDelay(10 * time.Millisecond)
	accounts := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		c := h.customer(t, name, "stripe:cus_"+name)
		accounts[c] = "stripe:cus_" + name
		h.enqueue(t, c, 15)
	}
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))
	h.checkExactlyOnce(t, accounts)
	if got := h.fake.MaxInFlightPerCustomer(); got != 1 {
		t.Errorf("Stripe saw %d calls open at once for one customer, it allows 1", got)
	}
	if got := h.fake.MaxInFlight(); got < 2 {
		t.Errorf("Stripe saw at most %d call open at once: customers were not reported concurrently", got)
	}
	if got := h.fake.MaxInFlight(); got > 4 {
		t.Errorf("Stripe saw %d calls open at once, more than the worker's concurrency of 4", got)
	}
}

// TestIdentifierDedupesWithoutReplay covers Stripe no longer replaying an
// idempotent answer (its window passed): the identifier alone must keep a
// re-sent event from counting twice, and the worker must see it as reported.
func TestIdentifierDedupesWithoutReplay(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.fake.DisableReplay()
	h.fake.SetFault(func(n int, _ stripetest.MeterEvent) stripetest.Fault {
		if n%2 == 1 {
			return stripetest.DropAfter // recorded, but the worker never hears so
		}
		return stripetest.None
	})
	c := h.customer(t, "alice", "stripe:cus_alice")
	events := h.enqueue(t, c, 10)
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
	for cause, e := range h.entries(t, c) {
		if e.State != billing.Reported {
			t.Errorf("%s is %s (%s), want reported", cause, e.State, e.Reason)
		}
	}
	if h.fake.Calls() < 2*h.batches(t) {
		t.Errorf("%d calls for %d events in %d batches: the dropped replies were not retried", h.fake.Calls(), len(events), h.batches(t))
	}
}

// TestRejectedEventIsUnbillable: a 4xx from Stripe is final, kept with
// Stripe's message, and not retried.
func TestRejectedEventIsUnbillable(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.fake.SetFault(func(_ int, ev stripetest.MeterEvent) stripetest.Fault {
		if ev.Customer == "cus_gone" {
			return stripetest.Reject
		}
		return stripetest.None
	})
	gone := h.customer(t, "gone", "stripe:cus_gone")
	ok := h.customer(t, "ok", "stripe:cus_ok")
	h.enqueue(t, gone, 3)
	h.enqueue(t, ok, 3)
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))

	for cause, e := range h.entries(t, gone) {
		if e.State != billing.Unbillable || !strings.Contains(e.Reason, "No such customer: 'cus_gone'") {
			t.Errorf("%s: %s %q, want unbillable with Stripe's message", cause, e.State, e.Reason)
		}
	}
	for cause, e := range h.entries(t, ok) {
		if e.State != billing.Reported {
			t.Errorf("%s of a good customer: %s %q", cause, e.State, e.Reason)
		}
	}
	if batches := h.batches(t); h.fake.Calls() != batches {
		t.Errorf("%d Stripe calls for %d batches, want one each: a rejection must not be retried", h.fake.Calls(), batches)
	}
}

// TestRetriesExhaustedThenRedrive: an event Stripe keeps failing ends in the
// failed state after MaxTries calls, and goes out once on redrive.
func TestRetriesExhaustedThenRedrive(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.fake.SetFault(func(int, stripetest.MeterEvent) stripetest.Fault { return stripetest.ServerError })
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 4)
	cfg := h.config(h.sink(t, 1000))
	cfg.MaxTries = 3
	runUntil(t, newWorker(t, cfg), h.settled(t))

	if n := h.count(t, billing.Failed); n != 4 {
		t.Fatalf("%d failed entries, want 4", n)
	}
	for cause, e := range h.entries(t, c) {
		if !strings.Contains(e.Reason, "gave up after 3 tries") || !strings.Contains(e.Reason, "500") {
			t.Errorf("%s failed with reason %q", cause, e.Reason)
		}
	}
	if batches := h.batches(t); h.fake.Calls() != 3*batches {
		t.Errorf("%d calls, want 3 tries × %d batches", h.fake.Calls(), batches)
	}

	h.fake.SetFault(nil) // Stripe is back
	cfg.Registry = prometheus.NewRegistry()
	res, err := newWorker(t, cfg).Redrive(context.Background(), billing.RedriveFilter{States: []billing.State{billing.Failed}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Settled[billing.Reported] != 4 || res.Errors != 0 {
		t.Fatalf("redrive = %+v, want 4 reported", res)
	}
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
}

// TestNoAccountThenCustomerSetAndRedrive: a customer without a Stripe
// account is not skipped: the events are counted, kept unbillable with a
// reason, and reported after the account is set and a redrive runs.
func TestNoAccountThenCustomerSetAndRedrive(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	free := h.customer(t, "free", "")
	h.enqueue(t, free, 5)
	unknown := "did:mailto:example.com:nobody" // never created
	h.enqueue(t, unknown, 1)
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))

	for cause, e := range h.entries(t, free) {
		if e.State != billing.Unbillable || e.Reason != billing.ReasonNoAccount {
			t.Errorf("%s: %s %q, want unbillable %q", cause, e.State, e.Reason, billing.ReasonNoAccount)
		}
	}
	for _, e := range h.entries(t, unknown) {
		if e.State != billing.Unbillable || !strings.Contains(e.Reason, "unknown") {
			t.Errorf("unknown customer's event: %s %q", e.State, e.Reason)
		}
	}
	if h.fake.Calls() != 0 {
		t.Fatalf("%d Stripe calls for customers without an account", h.fake.Calls())
	}

	// `egressd customer set` then `egressd billing redrive --customer`.
	h.customer(t, "free", "stripe:cus_free")
	h.customer(t, "nobody", "stripe:cus_nobody")
	w := newWorker(t, h.config(h.sink(t, 1000)))
	res, err := w.Redrive(context.Background(), billing.RedriveFilter{Customer: free})
	if err != nil || res.Settled[billing.Reported] != 5 {
		t.Fatalf("redrive of %s = %+v, %v; want 5 reported", free, res, err)
	}
	if res, err = w.Redrive(context.Background(), billing.RedriveFilter{}); err != nil || res.Settled[billing.Reported] != 1 {
		t.Fatalf("redrive of the rest = %+v, %v; want 1 reported", res, err)
	}
	h.checkExactlyOnce(t, map[string]string{free: "stripe:cus_free", unknown: "stripe:cus_nobody"})
	if res, err := w.Redrive(context.Background(), billing.RedriveFilter{States: []billing.State{billing.Reported}}); err == nil {
		t.Fatalf("redrive of reported entries was accepted: %+v", res)
	}
}

// TestNoStripeKeyThenRedrive: without a sink (no Stripe key) the worker
// still ledgers and counts every event, marks it unbillable, and a redrive
// with a key reports it.
func TestNoStripeKeyThenRedrive(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 5)
	runUntil(t, newWorker(t, h.config(nil)), h.settled(t))
	if n := h.count(t, billing.Unbillable); n != 5 {
		t.Fatalf("%d unbillable entries without a key, want 5", n)
	}
	for _, e := range h.entries(t, c) {
		if e.Reason != billing.ReasonNoSink {
			t.Fatalf("reason %q, want %q", e.Reason, billing.ReasonNoSink)
		}
	}
	res, err := newWorker(t, h.config(h.sink(t, 1000))).Redrive(context.Background(), billing.RedriveFilter{})
	if err != nil || res.Settled[billing.Reported] != 5 {
		t.Fatalf("redrive = %+v, %v", res, err)
	}
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
}

// TestRateLimitHolds: with --stripe-rate R (burst R/10, at least 1), N calls
// cannot all start before (N - burst)/R has passed since the reporter was
// made. This is a lower bound that only a broken limiter can miss; a slow
// machine only makes the run longer.
func TestRateLimitHolds(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.spread = time.Minute // one event a window: a call each
	var accounts = map[string]string{}
	for _, name := range []string{"a", "b", "c", "d"} {
		c := h.customer(t, name, "stripe:cus_"+name)
		accounts[c] = "stripe:cus_" + name
		h.enqueue(t, c, 8)
	}
	const rate, burst, calls = 20, 2, 32
	start := time.Now()
	runUntil(t, newWorker(t, h.config(h.sink(t, rate))), h.settled(t))
	h.checkExactlyOnce(t, accounts)

	arrivals := h.fake.Arrivals()
	if len(arrivals) != calls {
		t.Fatalf("%d calls, want %d", len(arrivals), calls)
	}
	minSpan := time.Duration(float64(calls-burst) / rate * float64(time.Second))
	if span := arrivals[len(arrivals)-1].Sub(start); span < minSpan {
		t.Fatalf("%d calls within %v, a rate of %d/s allows no fewer than %v", calls, span, rate, minSpan)
	}
}

// TestShutdownHandsBackEvents: events in progress when the worker stops go
// back on the queue at once, and the next worker settles them exactly once.
func TestShutdownHandsBackEvents(t *testing.T) {
	h := newHarness(t, time.Minute) // a lease that would outlive the test
	h.fake.SetDelay(300 * time.Millisecond)
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 20)

	cfg := h.config(h.sink(t, 1000))
	cfg.DrainTimeout = 10 * time.Millisecond
	runUntil(t, newWorker(t, cfg), func() bool { return h.fake.Calls() > 0 })
	if depth, _ := h.queue.Depth(context.Background()); depth == 0 {
		t.Fatal("all events settled before the shutdown: the test proves nothing")
	}

	h.fake.SetDelay(0)
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
}

// flakyLedger fails Record and Settle now and then, like a full disk would.
type flakyLedger struct {
	billing.Ledger
	records, settles int
}

func (l *flakyLedger) Record(ctx context.Context, evs []billing.Event, rule billing.BatchRule) ([]billing.Entry, []billing.Batch, error) {
	l.records++
	if l.records%2 == 0 {
		return nil, nil, errTest
	}
	return l.Ledger.Record(ctx, evs, rule)
}

func (l *flakyLedger) Settle(ctx context.Context, s ...billing.Settlement) error {
	l.settles++
	if l.settles%2 == 1 {
		return errTest
	}
	return l.Ledger.Settle(ctx, s...)
}

var errTest = &billing.ReportError{Reason: "injected store failure"}

// TestLedgerFailureLeavesEventOnQueue: when the ledger cannot be written the
// message is not acknowledged; the queue redelivers it and it is billed once.
func TestLedgerFailureLeavesEventOnQueue(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond)
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 12)
	cfg := h.config(h.sink(t, 1000))
	cfg.Ledger = &flakyLedger{Ledger: h.ledger} // one customer: calls are serial
	cfg.Visibility = 200 * time.Millisecond
	runUntil(t, newWorker(t, cfg), h.settled(t))
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
	if n := metric(t, cfg.Registry, "egressd_billing_errors_total", "op", "ledger_settle"); n == 0 {
		t.Error("no Settle failed: the fault was not injected")
	}
}
