package billing_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// TestRedriveHoldsBackBatchesStripeMayHoldPastItsMemory: a call Stripe
// counted but answered 500, then tries that all fail, leave the batch failed
// while Stripe bills it. Within Stripe's 24 hours a redrive is safe (the
// identifier dedupes); a day later Stripe has forgotten the identifier, so
// the redrive holds the batch back unless forced.
func TestRedriveHoldsBackBatchesStripeMayHoldPastItsMemory(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.fake.SetFault(func(n int, _ stripetest.MeterEvent) stripetest.Fault {
		if n == 1 {
			return stripetest.ServerErrorAfter // counted; the reply is a 500
		}
		return stripetest.ServerError // then Stripe stays down
	})
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 1)
	cfg := h.config(h.sink(t, 1000))
	cfg.MaxTries = 3
	runUntil(t, newWorker(t, cfg), h.settled(t))
	if n := h.count(t, billing.Failed); n != 1 {
		t.Fatalf("%d failed entries, want 1", n)
	}
	billed := h.fake.Totals()["cus_alice"]

	h.fake.SetFault(nil)
	cfg.Registry = prometheus.NewRegistry()
	tomorrow := func() time.Time { return time.Now().Add(25 * time.Hour) }
	res, err := newWorker(t, cfg).Redrive(context.Background(), billing.RedriveFilter{Now: tomorrow})
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != 1 || len(res.Settled) != 0 || h.fake.Totals()["cus_alice"] != billed {
		t.Fatalf("a redrive a day later = %+v, Stripe bills %d (was %d); want the batch held back", res, h.fake.Totals()["cus_alice"], billed)
	}
	// Within the window the same redrive is safe, and reports it.
	res, err = newWorker(t, func() billing.WorkerConfig { cfg.Registry = prometheus.NewRegistry(); return cfg }()).Redrive(context.Background(), billing.RedriveFilter{})
	if err != nil || res.Settled[billing.Reported] != 1 {
		t.Fatalf("redrive within the window = %+v, %v; want 1 reported", res, err)
	}
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
}

// TestRedriveRepairsMembersLeftBehind: a settle stopped between a batch and
// its members (possible on DynamoDB) leaves members in the old state; a
// redrive that lists them brings them into line and sends nothing.
func TestRedriveRepairsMembersLeftBehind(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	c := h.customer(t, "alice", "stripe:cus_alice")
	ctx := context.Background()
	evs := h.enqueue(t, c, 2)
	entries, batches, err := h.ledger.Record(ctx, evs, billing.BatchRule{Window: time.Minute})
	if err != nil || len(batches) != 1 || len(entries) != 2 {
		t.Fatalf("Record: %v, %d batches", err, len(batches))
	}
	b := batches[0]
	if err := h.ledger.Settle(ctx, billing.Settlement{Batch: b, State: billing.Failed, Reason: "gave up"}); err != nil {
		t.Fatal(err)
	}
	if err := h.ledger.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	// Put one member back as it was before the second settle.
	db, err := sql.Open("sqlite", filepath.Join(h.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE ledger SET state = ?, reason = ? WHERE cause = ?`, billing.Failed, "gave up", evs[1].Cause); err != nil {
		t.Fatal(err)
	}
	res, err := newWorker(t, h.config(h.sink(t, 1000))).Redrive(ctx, billing.RedriveFilter{})
	if err != nil || res.Repaired != 2 {
		t.Fatalf("redrive = %+v, %v; want the batch of 2 repaired", res, err)
	}
	for cause, e := range h.entries(t, c) {
		if e.State != billing.Reported {
			t.Errorf("%s is %s after the redrive, want reported like its batch", cause, e.State)
		}
	}
	if calls := h.fake.Calls(); calls != 0 {
		t.Errorf("%d Stripe calls: a repair sends nothing", calls)
	}
}

// TestRedriveAsksForAccountsAfresh: the operator sets a customer's account
// and redrives at once (the console's button): the worker that found no
// account a moment ago must ask again, not answer from its cache. A redrive
// narrowed to another reason leaves the group alone.
func TestRedriveAsksForAccountsAfresh(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	c := h.customer(t, "bob", "")
	h.enqueue(t, c, 2)
	cfg := h.config(h.sink(t, 1000))
	cfg.AccountTTL = time.Hour
	w := newWorker(t, cfg)
	runUntil(t, w, h.settled(t))
	var reason string
	for _, e := range h.entries(t, c) {
		if e.State != billing.Unbillable {
			t.Fatalf("entry %+v, want unbillable", e)
		}
		reason = e.Reason
	}
	h.customer(t, "bob", "stripe:cus_bob")

	res, err := w.Redrive(context.Background(), billing.RedriveFilter{Customer: c, Reason: "another reason"})
	if err != nil || len(res.Settled) != 0 {
		t.Fatalf("a redrive of another reason = %+v, %v; want nothing done", res, err)
	}
	res, err = w.Redrive(context.Background(), billing.RedriveFilter{Customer: c, Reason: reason})
	if err != nil || res.Settled[billing.Reported] != 2 {
		t.Fatalf("redrive right after the account was set = %+v, %v; want 2 reported", res, err)
	}
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_bob"})
}
