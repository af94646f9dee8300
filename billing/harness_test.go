package billing_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/customers"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/embedded"
)

// harness is a data directory with the embedded stores and a fake Stripe:
// everything a worker touches, real except Stripe.
type harness struct {
	dir       string
	queue     *sqlite.Queue
	ledger    *sqlite.Ledger
	customers *customersqlite.Store
	fake      *stripetest.Fake
	// expected holds every distinct event enqueued, by cause.
	expected map[string]billing.Event
	// spread, when set, puts each event enqueued this much earlier than the
	// one before, so that events fall in different windows (batches).
	spread time.Duration
}

func newHarness(t testing.TB, visibility time.Duration) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), fake: stripetest.New(t), expected: make(map[string]billing.Event)}
	var err error
	db, err := embedded.Open(context.Background(), h.dir, embedded.Options{Visibility: visibility, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.queue, h.ledger, h.customers = db.Queue, db.Ledger, db.Customers
	t.Cleanup(func() { db.Close() })
	return h
}

// customer creates a customer with the given Stripe account ("" for none).
func (h *harness) customer(t testing.TB, name, account string) string {
	t.Helper()
	customer := "did:mailto:example.com:" + name
	if err := h.customers.SetAccount(context.Background(), customer, account); err != nil {
		t.Fatal(err)
	}
	return customer
}

// enqueue puts n new events for customer on the queue and returns them.
func (h *harness) enqueue(t testing.TB, customer string, n int) []billing.Event {
	t.Helper()
	events := make([]billing.Event, n)
	for i := range events {
		events[i] = billing.Event{
			Space:    fmt.Sprintf("did:key:z6Mkspace%d", i%3),
			Customer: customer,
			Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
			Bytes:    int64(1000 + len(h.expected)*7),
			ServedAt: time.Now().Add(-time.Minute - time.Duration(i)*h.spread).Truncate(time.Millisecond),
			Cause:    randomCause(),
		}
		h.expected[events[i].Cause] = events[i]
	}
	h.requeue(t, events...)
	return events
}

// requeue puts events on the queue again, as a retried invocation does.
func (h *harness) requeue(t testing.TB, events ...billing.Event) {
	t.Helper()
	if err := h.queue.Enqueue(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
}

func randomCause() string {
	b := make([]byte, 26)
	rand.Read(b)
	return "bafyrei" + hex.EncodeToString(b)
}

// sink is a Stripe v1 sink pointed at the fake.
func (h *harness) sink(t testing.TB, rate float64) *stripe.Reporter {
	return h.sinkAPI(t, "v1", rate)
}

// sinkAPI is a Stripe sink on api ("v1" or "v2") pointed at the fake.
func (h *harness) sinkAPI(t testing.TB, api string, rate float64) *stripe.Reporter {
	t.Helper()
	r, err := stripe.New(stripe.Config{Key: stripetest.Key, URL: h.fake.URL, API: api, EventName: "egress", Rate: rate, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// accounts answers the worker's account lookups from the embedded customer
// store, as cmd/egressd does.
type accounts struct{ store *customersqlite.Store }

func (a accounts) Account(ctx context.Context, customer string) (string, error) {
	account, err := a.store.Account(ctx, customer)
	if errors.Is(err, customers.ErrNotFound) {
		return "", billing.ErrUnknownCustomer
	}
	return account, err
}

// config is a worker configuration with short waits, for tests.
func (h *harness) config(sink billing.Sink) billing.WorkerConfig {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return billing.WorkerConfig{
		Queue: h.queue, Ledger: h.ledger, Accounts: accounts{h.customers}, Sink: sink,
		Concurrency: 4, Batch: 10, Wait: 50 * time.Millisecond, Visibility: 3 * time.Second,
		MaxTries: 25, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Registry:     prometheus.NewRegistry(),
	}
}

func newWorker(t testing.TB, cfg billing.WorkerConfig) *billing.Worker {
	t.Helper()
	w, err := billing.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runUntil runs w until done reports true (checked every 20 ms), then stops
// it. It fails the test if that takes longer than a minute: a hang, not a
// timing assertion.
func runUntil(t testing.TB, w *billing.Worker, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			<-stopped
			t.Fatalf("worker did not finish within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// settled reports whether the queue is empty and no entry is pending.
func (h *harness) settled(t testing.TB) func() bool {
	return func() bool {
		depth, err := h.queue.Depth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return depth == 0 && h.count(t, billing.Pending) == 0
	}
}

// count is how many ledger entries of this month are in state.
func (h *harness) count(t testing.TB, state billing.State) int64 {
	t.Helper()
	counts, err := h.ledger.Count(context.Background(), billing.UsageFilter{Month: billing.Month(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	return counts[state]
}

// entries returns the ledger entries of customer, by cause.
func (h *harness) entries(t testing.TB, customer string) map[string]billing.Entry {
	t.Helper()
	es, err := h.ledger.Entries(context.Background(), billing.EntryFilter{Customer: customer, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]billing.Entry, len(es))
	for _, e := range es {
		out[e.Cause] = e
	}
	return out
}

// checkExactlyOnce checks that every expected event is reported in the
// ledger, in exactly one batch, and that Stripe holds each batch exactly once
// under its identifier, with the right customer, the batch's total as value
// and a timestamp in the batch's window; and that the monthly totals count
// each event exactly once.
func (h *harness) checkExactlyOnce(t testing.TB, accounts map[string]string) {
	t.Helper()
	type batch struct {
		customer string
		bytes    int64
		latest   time.Time
	}
	batches := make(map[string]*batch)
	all, err := h.ledger.Entries(context.Background(), billing.EntryFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	entries := make(map[string]billing.Entry, len(all))
	for _, e := range all {
		entries[e.Cause] = e
	}
	var wantBytes, gotBytes int64
	for cause, ev := range h.expected {
		wantBytes += ev.Bytes
		e, ok := entries[cause]
		if !ok || e.State != billing.Reported || e.Batch == "" {
			t.Errorf("event %s: entry %+v, want reported in a batch", cause, e)
			continue
		}
		b := batches[e.Batch]
		if b == nil {
			b = &batch{customer: ev.Customer}
			batches[e.Batch] = b
		}
		if b.customer != ev.Customer {
			t.Errorf("batch %s mixes customers %s and %s", e.Batch, b.customer, ev.Customer)
		}
		b.bytes += ev.Bytes
		if ev.ServedAt.After(b.latest) {
			b.latest = ev.ServedAt
		}
	}
	got := h.fake.Events()
	if len(got) != len(batches) {
		t.Errorf("Stripe has %d meter events, the ledger %d batches", len(got), len(batches))
	}
	for id, b := range batches {
		me, ok := got[id]
		if !ok {
			t.Errorf("batch %s never reached Stripe", id)
			continue
		}
		gotBytes += me.Value
		if me.Value != b.bytes || "stripe:"+me.Customer != accounts[b.customer] || me.Timestamp != b.latest.Unix() {
			t.Errorf("meter event %+v does not match batch %s %+v", me, id, *b)
		}
	}
	if gotBytes != wantBytes {
		t.Errorf("Stripe total %d bytes, recorded %d", gotBytes, wantBytes)
	}

	usage, err := h.ledger.Usage(context.Background(), billing.UsageFilter{Month: billing.Month(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]billing.Usage)
	for _, ev := range h.expected {
		u := want[ev.Customer+" "+ev.Space]
		u.Bytes += ev.Bytes
		u.Events++
		want[ev.Customer+" "+ev.Space] = u
	}
	if len(usage) != len(want) {
		t.Errorf("monthly totals have %d rows, want %d", len(usage), len(want))
	}
	for _, u := range usage {
		if w := want[u.Customer+" "+u.Space]; u.Bytes != w.Bytes || u.Events != w.Events {
			t.Errorf("monthly total %+v, want %d bytes in %d events", u, w.Bytes, w.Events)
		}
	}
}

// batches is how many distinct batches the ledger holds.
func (h *harness) batches(t testing.TB) int {
	t.Helper()
	all, err := h.ledger.Entries(context.Background(), billing.EntryFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool)
	for _, e := range all {
		ids[e.Batch] = true
	}
	return len(ids)
}

// metric reads a counter of the worker's registry.
func metric(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// watchedSink counts the calls the worker has open per customer, to check
// the worker's own guarantee independently of what the network does to a
// call that timed out.
type watchedSink struct {
	billing.Sink
	mu          sync.Mutex
	open        map[string]int
	maxCustomer int
}

func watch(s billing.Sink) *watchedSink {
	return &watchedSink{Sink: s, open: make(map[string]int)}
}

func (s *watchedSink) Report(ctx context.Context, charges []billing.Charge) []error {
	s.mu.Lock()
	for _, c := range charges {
		s.open[c.Account]++
		s.maxCustomer = max(s.maxCustomer, s.open[c.Account])
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for _, c := range charges {
			s.open[c.Account]--
		}
		s.mu.Unlock()
	}()
	return s.Sink.Report(ctx, charges)
}

func (s *watchedSink) maxPerCustomer() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxCustomer
}
