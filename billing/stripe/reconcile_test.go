package stripe_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/billing/meterevent"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/embedded"
)

const (
	alice = "did:mailto:example.com:alice"
	bob   = "did:mailto:example.com:bob"
)

// testClock is one clock for the fake Stripe and for Reconcile. It starts
// at the real time, which is what the SQLite ledger stamps batches with.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// world is a fake Stripe with the egress meter, and an SQLite ledger.
type world struct {
	fake   *stripetest.Fake
	ledger *sqlite.Ledger
	clock  *testClock
	events meterevent.Client
	// day is midnight UTC two days before the start: batches are served
	// in the hours after it.
	day time.Time
	n   int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	data, err := embedded.Open(t.Context(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	l := data.Ledger
	now := time.Now().UTC()
	w := &world{fake: stripetest.New(t), ledger: l, clock: &testClock{now: now}, day: now.Truncate(24 * time.Hour).Add(-48 * time.Hour)}
	w.fake.SetNow(w.clock.Now)
	w.fake.AddMeter("egress")
	backend := stripego.GetBackendWithConfig(stripego.APIBackend, &stripego.BackendConfig{
		URL:               stripego.String(w.fake.URL),
		MaxNetworkRetries: stripego.Int64(0),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
	})
	w.events = meterevent.Client{B: backend, Key: stripetest.Key}
	return w
}

// batch records one event of customer's served at ts as a batch of its
// own, and settles it in state st (unless pending); with sent, the worker's
// meter event for it reached Stripe now. A reported or failed batch is
// billed to stripe:cus_<name>, as the worker would have.
func (w *world) batch(t *testing.T, customer string, ts time.Time, bytes int64, st billing.State, sent bool) billing.Batch {
	t.Helper()
	account := ""
	if st == billing.Reported || st == billing.Failed {
		account = "stripe:cus_" + strings.TrimPrefix(customer, "did:mailto:example.com:")
	}
	return w.batchTo(t, customer, account, ts, bytes, st, sent)
}

// batchTo is batch billed to account; "" is a batch from before the ledger
// kept accounts (sent, it reaches stripe:cus_<name>).
func (w *world) batchTo(t *testing.T, customer, account string, ts time.Time, bytes int64, st billing.State, sent bool) billing.Batch {
	t.Helper()
	w.n++
	ev := billing.Event{Space: "did:key:z6Mkspace", Customer: customer, Resource: "bafkreires", Bytes: bytes, ServedAt: ts,
		Cause: fmt.Sprintf("bafyreibatch%04d", w.n)}
	ctx := context.Background()
	_, batches, err := w.ledger.Record(ctx, []billing.Event{ev}, billing.BatchRule{})
	if err != nil || len(batches) != 1 {
		t.Fatalf("recording %s: %d batches, %v", ev.Cause, len(batches), err)
	}
	b := batches[0]
	if st != billing.Pending {
		b.Account = account
		if err := w.ledger.Settle(ctx, billing.Settlement{Batch: b, State: st, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if b, err = w.ledger.Batch(ctx, b.ID); err != nil || b.State != st {
			t.Fatalf("batch %s after settling it %s: %+v, %v", ev.Cause, st, b, err)
		}
		if b.Account != account {
			t.Fatalf("batch %s settled to %q: the ledger kept account %q", ev.Cause, account, b.Account)
		}
	}
	if sent {
		stripeCustomer := strings.TrimPrefix(account, "stripe:")
		if stripeCustomer == "" {
			stripeCustomer = "cus_" + strings.TrimPrefix(customer, "did:mailto:example.com:")
		}
		w.send(t, stripeCustomer, stripe.BatchIdentifier(b), bytes, ts)
	}
	return b
}

// send makes Stripe receive a meter event now.
func (w *world) send(t *testing.T, customer, identifier string, value int64, ts time.Time) {
	t.Helper()
	_, err := w.events.New(&stripego.BillingMeterEventParams{
		EventName:  stripego.String("egress"),
		Identifier: stripego.String(identifier),
		Payload:    map[string]string{"stripe_customer_id": customer, "value": strconv.FormatInt(value, 10)},
		Timestamp:  stripego.Int64(ts.Unix()),
	})
	if err != nil {
		t.Fatalf("sending %s to the fake: %v", identifier, err)
	}
}

// reconcile runs Reconcile over [from, to) for alice (stripe:cus_alice)
// and bob (no account).
func (w *world) reconcile(t *testing.T, from, to time.Time, fix bool) stripe.ReconcileReport {
	t.Helper()
	return w.reconcileFor(t, from, to, fix, stripe.ReconcileCustomer{Customer: alice, Account: "stripe:cus_alice"}, stripe.ReconcileCustomer{Customer: bob})
}

// reconcileFor runs Reconcile over [from, to) for customers.
func (w *world) reconcileFor(t *testing.T, from, to time.Time, fix bool, customers ...stripe.ReconcileCustomer) stripe.ReconcileReport {
	t.Helper()
	rep, err := stripe.Reconcile(context.Background(), stripe.ReconcileConfig{
		Ledger: w.ledger, Key: stripetest.Key, URL: w.fake.URL, EventName: "egress", Rate: 1000, Timeout: 5 * time.Second,
		Customers: customers, From: from, To: to, Fix: fix, Now: w.clock.Now,
	})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return rep
}

// hours is a report's hours as "hour ledger stripe status" lines, each hour
// counted from w.day.
func (w *world) hours(rep stripe.ReconcileReport) string {
	var lines []string
	for _, h := range rep.Hours {
		lines = append(lines, fmt.Sprintf("%d %d %d %s", int(h.Hour.Sub(w.day).Hours()), h.Ledger, h.Stripe, h.Status))
	}
	return strings.Join(lines, "\n")
}

// TestReconcileClean: a ledger whose reported batches Stripe holds, and
// whose failed batch Stripe does not, matches hour by hour; bob, without an
// account, is named as skipped; nothing is written to Stripe. The meter is
// found on the second page of meters and the summaries take two pages.
func TestReconcileClean(t *testing.T) {
	w := newWorld(t)
	for i := range 120 {
		w.fake.AddMeter(fmt.Sprintf("other-%d", i)) // newer, listed first
	}
	day := w.day
	w.batch(t, alice, day.Add(10*time.Hour+5*time.Minute), 1000, billing.Reported, true)
	w.batch(t, alice, day.Add(10*time.Hour+55*time.Minute), 2000, billing.Reported, true)
	w.batch(t, alice, day.Add(30*time.Hour), 4000, billing.Reported, true)
	w.batch(t, alice, day.Add(30*time.Hour+time.Minute), 8000, billing.Failed, false)
	w.batch(t, bob, day.Add(11*time.Hour), 16000, billing.Unbillable, false)
	w.clock.advance(time.Hour)

	rep := w.reconcile(t, day.Add(-72*time.Hour), day.Add(48*time.Hour), true)
	if got, want := w.hours(rep), "10 3000 3000 match\n30 4000 4000 match"; got != want || !rep.OK() {
		t.Fatalf("hours:\n%s\nwant:\n%s", got, want)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Customer != bob || rep.Skipped[0].Reason != "no Stripe account" || rep.Customers != 1 {
		t.Fatalf("skipped = %+v, want bob without an account", rep.Skipped)
	}
	if len(rep.Actions) != 0 || w.fake.Requests(stripetest.AdjustmentsEndpoint) != 0 || w.fake.Calls() != 3 {
		t.Fatalf("a clean ledger changed Stripe: actions %+v, %d calls", rep.Actions, w.fake.Calls())
	}
	if n := w.fake.Requests(stripetest.EventSummariesEndpoint); n != 2 {
		t.Fatalf("%d summary requests for 120 hours, want 2 pages", n)
	}
	if n := w.fake.Requests(stripetest.MetersEndpoint); n != 2 {
		t.Fatalf("%d meter list requests for 121 meters, want 2 pages", n)
	}
}

// TestReconcileCorrectsLostEvents: batches the ledger holds as reported but
// Stripe never counted are found; with Fix one correction per hour is sent;
// a second run before Stripe's summary shows them sends the same
// identifiers, which Stripe refuses as duplicates, so nothing is counted
// twice; once the summary catches up everything matches.
func TestReconcileCorrectsLostEvents(t *testing.T) {
	w := newWorld(t)
	w.fake.SetSummaryLag(10 * time.Minute)
	day := w.day
	w.batch(t, alice, day.Add(3*time.Hour), 1000, billing.Reported, true)
	w.batch(t, alice, day.Add(3*time.Hour+time.Minute), 2000, billing.Reported, false) // lost
	w.batch(t, alice, day.Add(7*time.Hour), 4000, billing.Reported, false)             // lost
	w.clock.advance(time.Hour)
	from, to := day, day.Add(24*time.Hour)

	rep := w.reconcile(t, from, to, false)
	if got, want := w.hours(rep), "3 3000 1000 drift\n7 4000 0 drift"; got != want || rep.OK() {
		t.Fatalf("without Fix:\n%s\nwant:\n%s", got, want)
	}
	if w.fake.Calls() != 1 {
		t.Fatal("reconciling without Fix sent meter events")
	}

	rep = w.reconcile(t, from, to, true)
	if got, want := w.hours(rep), "3 3000 1000 mended\n7 4000 0 mended"; got != want || !rep.OK() {
		t.Fatalf("Fix:\n%s\nwant:\n%s", got, want)
	}
	if len(rep.Actions) != 2 || rep.Actions[0].Value != 2000 || rep.Actions[1].Value != 4000 || rep.Actions[0].Result != "sent" {
		t.Fatalf("actions = %+v, want corrections of 2000 and 4000 sent", rep.Actions)
	}
	first := rep.Actions
	for _, a := range first {
		ev, ok := w.fake.Events()[a.Identifier]
		if !ok || ev.Customer != "cus_alice" || ev.Value != a.Value || ev.Timestamp != a.Hour.Add(time.Hour-time.Second).Unix() {
			t.Fatalf("correction %+v at Stripe: %+v", a, ev)
		}
	}

	// Stripe's summary lags: the same drift, the same identifiers, refused.
	w.clock.advance(time.Minute)
	rep = w.reconcile(t, from, to, true)
	if got := w.hours(rep); got != "3 3000 1000 mended\n7 4000 0 mended" {
		t.Fatalf("second Fix:\n%s", got)
	}
	for i, a := range rep.Actions {
		if a.Identifier != first[i].Identifier || !strings.HasPrefix(a.Result, "already at Stripe") {
			t.Fatalf("second Fix action %+v, want %s already at Stripe", a, first[i].Identifier)
		}
	}
	if n := len(w.fake.Accepted()); n != 3 {
		t.Fatalf("Stripe accepted %d meter events, want the batch and 2 corrections", n)
	}

	w.clock.advance(10 * time.Minute)
	rep = w.reconcile(t, from, to, true)
	if got := w.hours(rep); got != "3 3000 3000 match\n7 4000 4000 match" || len(rep.Actions) != 0 {
		t.Fatalf("once Stripe's summary caught up:\n%s\nactions %+v", got, rep.Actions)
	}
	if total := w.fake.Totals()["cus_alice"]; total != 7000 {
		t.Fatalf("Stripe bills %d, want the ledger's 7000", total)
	}
}

// TestReconcileWaitsForTheLedgerToSettle: a batch the worker reported a
// moment ago is not yet in Stripe's lagging summary. Correcting it would
// bill it twice, so the hour is left unsettled until DefaultSettle has
// passed, by when Stripe's summary shows it.
func TestReconcileWaitsForTheLedgerToSettle(t *testing.T) {
	w := newWorld(t)
	w.fake.SetSummaryLag(10 * time.Minute)
	w.batch(t, alice, w.day.Add(9*time.Hour), 500, billing.Reported, true)
	rep := w.reconcile(t, w.day, w.day.Add(24*time.Hour), true)
	if got := w.hours(rep); got != "9 500 0 unsettled" || rep.OK() || len(rep.Actions) != 0 || !strings.Contains(rep.Hours[0].Reason, "run again after") {
		t.Fatalf("a batch settled just now:\n%s\n%+v", got, rep)
	}
	w.clock.advance(stripe.DefaultSettle)
	rep = w.reconcile(t, w.day, w.day.Add(24*time.Hour), true)
	if got := w.hours(rep); got != "9 500 500 match" || len(rep.Actions) != 0 || w.fake.Calls() != 1 {
		t.Fatalf("after the settle time:\n%s\nactions %+v", got, rep.Actions)
	}
}

// TestReconcileCancelsOverReports: Stripe counts batches the ledger holds
// as not billed. The one Stripe received in the past 24 h is cancelled, and
// a failed batch Stripe never had is left alone; the one Stripe received 25
// hours ago cannot be cancelled, and neither can an event the ledger knows
// nothing of: both are named with their value.
func TestReconcileCancelsOverReports(t *testing.T) {
	w := newWorld(t)
	day := w.day
	w.clock.advance(-25 * time.Hour)
	received := w.batch(t, alice, day.Add(2*time.Hour), 700, billing.Failed, true) // Stripe receives it 25 h ago
	w.clock.advance(25 * time.Hour)
	w.batch(t, alice, day.Add(1*time.Hour), 1000, billing.Reported, true)
	fresh := w.batch(t, alice, day.Add(3*time.Hour), 2000, billing.Pending, true)
	notAtStripe := w.batch(t, alice, day.Add(3*time.Hour+time.Minute), 50, billing.Failed, false)
	w.send(t, "cus_alice", "someone-else-1", 90, day.Add(4*time.Hour))
	w.clock.advance(time.Hour)

	rep := w.reconcile(t, day, day.Add(24*time.Hour), true)
	if got, want := w.hours(rep), "1 1000 1000 match\n2 0 700 unmended\n3 0 2000 mended\n4 0 90 unmended"; got != want || rep.OK() {
		t.Fatalf("hours:\n%s\nwant:\n%s", got, want)
	}
	if h := rep.Hours[1]; h.Unmended != 700 || !strings.Contains(h.Reason, "700 bytes more") {
		t.Errorf("hour 2: %+v; want 700 unmended", h)
	}
	if h := rep.Hours[3]; h.Unmended != 90 || !strings.Contains(h.Reason, "no batch the ledger holds as not billed") {
		t.Errorf("hour 4: %+v; want 90 unmended, unexplained", h)
	}
	results := make(map[string]string)
	for _, a := range rep.Actions {
		if a.Kind != "cancel" {
			t.Fatalf("action %+v, want only cancels", a)
		}
		results[a.Batch] = a.Result
	}
	if len(results) != 2 || results[fresh.ID] != "cancelled" || !strings.HasPrefix(results[received.ID], "not cancelled: ") || results[notAtStripe.ID] != "" {
		t.Fatalf("cancels %v; want %s cancelled and %s refused by Stripe (received 26 h ago)", results, fresh.ID, received.ID)
	}
	if ev := w.fake.Events()[stripe.BatchIdentifier(fresh)]; !ev.Cancelled {
		t.Fatalf("the pending batch's meter event was not cancelled at Stripe: %+v", ev)
	}

	// Again: the cancelled hour is gone (nothing billed, nothing
	// reported); nothing else can be done.
	rep = w.reconcile(t, day, day.Add(24*time.Hour), true)
	if got := w.hours(rep); got != "1 1000 1000 match\n2 0 700 unmended\n4 0 90 unmended" {
		t.Fatalf("second run:\n%s", got)
	}
}

// TestReconcileOverReportPastCancelling: a failed batch Stripe counted,
// which the ledger last touched more than 24 hours ago, is past Stripe's
// cancel window: it is named, batch and value, without a call.
func TestReconcileOverReportPastCancelling(t *testing.T) {
	w := newWorld(t)
	old := w.batch(t, alice, w.day.Add(5*time.Hour), 300, billing.Failed, true)
	w.clock.advance(25 * time.Hour)
	rep := w.reconcile(t, w.day, w.day.Add(24*time.Hour), true)
	if got := w.hours(rep); got != "5 0 300 unmended" || rep.OK() {
		t.Fatalf("hours:\n%s", got)
	}
	if h := rep.Hours[0]; h.Unmended != 300 || !strings.Contains(h.Reason, old.ID) || !strings.Contains(h.Reason, "more than 24 h ago") {
		t.Errorf("%+v; want 300 unmended naming %s as past cancelling", h, old.ID)
	}
	if len(rep.Actions) != 0 || w.fake.Requests(stripetest.AdjustmentsEndpoint) != 0 {
		t.Fatalf("tried to cancel past 24 h: %+v", rep.Actions)
	}
}

// TestReconcileHourPastStripesWindow: an under-report in an hour more than
// 35 days old cannot be corrected, and is named with its value.
func TestReconcileHourPastStripesWindow(t *testing.T) {
	w := newWorld(t)
	old := w.clock.Now().AddDate(0, 0, -35).Truncate(time.Hour).Add(-2 * time.Hour)
	w.batch(t, alice, old.Add(10*time.Minute), 1234, billing.Reported, false)
	w.clock.advance(time.Hour)
	rep := w.reconcile(t, old, old.Add(24*time.Hour), true)
	if len(rep.Hours) != 1 || rep.Hours[0].Status != stripe.Unmended || rep.Hours[0].Unmended != -1234 ||
		!strings.Contains(rep.Hours[0].Reason, "more than 35 days old") || rep.OK() {
		t.Fatalf("hours %+v; want 1234 bytes named as too old to correct", rep.Hours)
	}
	if len(rep.Actions) != 0 || w.fake.Calls() != 0 {
		t.Fatalf("sent %+v for an hour Stripe no longer takes", rep.Actions)
	}
}

// TestCheckRange: ranges are rounded outward to whole hours, and must be
// neither empty nor longer than MaxReconcileRange.
func TestCheckRange(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		from, to, wantFrom, wantTo, err string
	}{
		{"2026-05-01T10:20:00Z", "2026-05-01T12:00:00Z", "2026-05-01T10:00:00Z", "2026-05-01T12:00:00Z", ""},
		{"2026-05-01T10:00:00Z", "2026-05-01T10:00:01Z", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z", ""},
		{"2026-05-01T12:30:00+02:00", "2026-05-01T11:30:00Z", "2026-05-01T10:00:00Z", "2026-05-01T12:00:00Z", ""},
		{"2026-05-01T10:00:00Z", "2026-06-06T10:00:00Z", "2026-05-01T10:00:00Z", "2026-06-06T10:00:00Z", ""},
		{"2026-05-01T10:00:00Z", "2026-05-01T10:00:00Z", "", "", "empty"},
		{"2026-05-01T11:00:00Z", "2026-05-01T10:00:00Z", "", "", "empty"},
		{"2026-05-01T10:00:00Z", "2026-06-06T10:00:01Z", "", "", "at most 36 days"},
	} {
		from, to, err := stripe.CheckRange(at(c.from), at(c.to))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s..%s: err %v, want %q", c.from, c.to, err, c.err)
		case c.err == "" && (err != nil || !from.Equal(at(c.wantFrom)) || !to.Equal(at(c.wantTo))):
			t.Errorf("%s..%s = %s..%s, %v; want %s..%s", c.from, c.to, from, to, err, c.wantFrom, c.wantTo)
		}
	}
}

// TestCorrectionIdentifier: a correction's identifier fits Stripe's 100
// characters, is the same for the same ledger total, and differs when the
// total, the hour, the account or the event name differ. Stripe's total is
// no input (it once was, and a summary that moved between two runs made a
// second correction of one shortfall; see TestReconcileRerunAfterStripeMoves).
func TestCorrectionIdentifier(t *testing.T) {
	hour := time.Date(2026, 5, 18, 3, 0, 0, 0, time.UTC)
	id := stripe.CorrectionIdentifier("egress", "stripe:cus_alice", hour, 3000)
	if len(id) > 100 || id != stripe.CorrectionIdentifier("egress", "stripe:cus_alice", hour, 3000) {
		t.Fatalf("identifier %q: want at most 100 characters and stable", id)
	}
	for _, other := range []string{
		stripe.CorrectionIdentifier("egress", "stripe:cus_alice", hour, 4000),
		stripe.CorrectionIdentifier("egress", "stripe:cus_alice", hour.Add(time.Hour), 3000),
		stripe.CorrectionIdentifier("egress", "stripe:cus_alice2", hour, 3000),
		stripe.CorrectionIdentifier("storage", "stripe:cus_alice", hour, 3000),
	} {
		if other == id {
			t.Fatalf("two corrections share the identifier %s", id)
		}
	}
}

// accountHours is a report's hours as "account hour ledger stripe status"
// lines, each hour counted from w.day.
func (w *world) accountHours(rep stripe.ReconcileReport) string {
	var lines []string
	for _, h := range rep.Hours {
		lines = append(lines, fmt.Sprintf("%s %d %d %d %s", h.Account, int(h.Hour.Sub(w.day).Hours()), h.Ledger, h.Stripe, h.Status))
	}
	return strings.Join(lines, "\n")
}

// TestReconcileAfterAccountChange: alice was billed to cus_alice and is
// billed to cus_alice2 since. Each account is compared with the batches
// billed to it, so what cus_alice holds matches there instead of passing
// for an under-report of cus_alice2, whose correction would bill it twice.
// A batch from before accounts were kept counts for cus_alice2. A batch
// lost at cus_alice2 is corrected there; one lost at cus_alice is named,
// never corrected, as cus_alice is no longer alice's; a failed batch
// cus_alice counted is cancelled, as at any account.
func TestReconcileAfterAccountChange(t *testing.T) {
	w := newWorld(t)
	day := w.day
	w.batch(t, alice, day.Add(10*time.Hour), 1000, billing.Reported, true)
	w.batch(t, alice, day.Add(11*time.Hour), 2000, billing.Reported, true)
	w.batch(t, alice, day.Add(12*time.Hour), 400, billing.Reported, false)
	failed := w.batch(t, alice, day.Add(13*time.Hour), 300, billing.Failed, true)
	old := w.batchTo(t, alice, "", day.Add(11*time.Hour+time.Minute), 50, billing.Reported, false)
	w.send(t, "cus_alice2", stripe.BatchIdentifier(old), 50, old.Timestamp)
	w.batchTo(t, alice, "stripe:cus_alice2", day.Add(14*time.Hour), 800, billing.Reported, false)
	w.clock.advance(time.Hour)

	rep := w.reconcileFor(t, day, day.Add(24*time.Hour), true, stripe.ReconcileCustomer{Customer: alice, Account: "stripe:cus_alice2"})
	want := "stripe:cus_alice2 11 50 50 match\nstripe:cus_alice2 14 800 0 mended\n" +
		"stripe:cus_alice 10 1000 1000 match\nstripe:cus_alice 11 2000 2000 match\nstripe:cus_alice 12 400 0 unmended\nstripe:cus_alice 13 0 300 mended"
	if got := w.accountHours(rep); got != want || rep.OK() {
		t.Fatalf("hours:\n%s\nwant:\n%s", got, want)
	}
	if h := rep.Hours[4]; !h.Former || h.Unmended != -400 || !strings.Contains(h.Reason, "no longer the customer's account (now stripe:cus_alice2)") {
		t.Errorf("cus_alice's lost hour: %+v; want -400 named, not corrected", h)
	}
	if len(rep.Actions) != 2 || rep.Actions[0].Kind != "correction" || rep.Actions[0].Account != "stripe:cus_alice2" || rep.Actions[0].Value != 800 ||
		rep.Actions[1].Kind != "cancel" || rep.Actions[1].Batch != failed.ID || !rep.Actions[1].Done {
		t.Fatalf("actions %+v; want cus_alice2's correction of 800 and the cancel of %s", rep.Actions, failed.ID)
	}
	if got := w.fake.Totals(); got["cus_alice"] != 3000 || got["cus_alice2"] != 850 {
		t.Fatalf("Stripe bills %v; want cus_alice 3000 (what it was billed, less the cancel) and cus_alice2 850", got)
	}
}

// TestReconcileRerunAfterStripeMoves: a correction depends on the ledger's
// total alone, so Stripe's summary moving between two runs never makes a
// second one. Hour 3: a batch lost at Stripe, and one the ledger holds as
// pending that the worker sent before it died, which Stripe sums late.
// While it is in flight the hour is named and not corrected (a correction
// of the shortfall seen before Stripe sums it would bill it twice); once
// the ledger settles it, the shortfall is corrected once. Hour 5: another
// sender's event is summed between two runs, before the correction is: the
// rerun sends the same identifier, which Stripe refuses.
func TestReconcileRerunAfterStripeMoves(t *testing.T) {
	w := newWorld(t)
	w.fake.SetSummaryLag(10 * time.Minute)
	day := w.day
	from, to := day, day.Add(24*time.Hour)
	w.batch(t, alice, day.Add(3*time.Hour), 1000, billing.Reported, true)
	w.batch(t, alice, day.Add(3*time.Hour+time.Minute), 2000, billing.Reported, false)
	p := w.batch(t, alice, day.Add(3*time.Hour+2*time.Minute), 500, billing.Pending, false)
	w.batch(t, alice, day.Add(5*time.Hour), 700, billing.Reported, false)
	w.clock.advance(time.Hour)
	w.send(t, "cus_alice", stripe.BatchIdentifier(p), 500, p.Timestamp)
	w.send(t, "cus_alice", "someone-else-1", 90, day.Add(5*time.Hour))

	w.clock.advance(5 * time.Minute)
	rep := w.reconcile(t, from, to, true)
	if got, want := w.hours(rep), "3 3000 1000 unmended\n5 700 0 mended"; got != want {
		t.Fatalf("first run:\n%s\nwant:\n%s", got, want)
	}
	if h := rep.Hours[0]; !strings.HasPrefix(h.Reason, "batches in flight: redrive or wait") || !strings.Contains(h.Reason, p.ID) {
		t.Errorf("hour 3: %+v; want it named in flight, with %s", h, p.ID)
	}
	if len(rep.Actions) != 1 || rep.Actions[0].Value != 700 || rep.Actions[0].Result != "sent" {
		t.Fatalf("first run's actions %+v; want hour 5's correction alone", rep.Actions)
	}
	correction := rep.Actions[0].Identifier

	w.clock.advance(6 * time.Minute) // Stripe has summed p and someone else's event, not the correction
	rep = w.reconcile(t, from, to, true)
	if got, want := w.hours(rep), "3 3000 1500 unmended\n5 700 90 mended"; got != want {
		t.Fatalf("second run:\n%s\nwant:\n%s", got, want)
	}
	if len(rep.Actions) != 1 || rep.Actions[0].Identifier != correction || !strings.HasPrefix(rep.Actions[0].Result, "already at Stripe") {
		t.Fatalf("second run's actions %+v; want %s again, refused", rep.Actions, correction)
	}

	if err := w.ledger.Settle(context.Background(), billing.Settlement{Batch: p, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(time.Hour)
	rep = w.reconcile(t, from, to, true)
	if got, want := w.hours(rep), "3 3500 1500 mended\n5 700 790 unmended"; got != want {
		t.Fatalf("once p is settled:\n%s\nwant:\n%s", got, want)
	}
	if got := w.fake.Totals()["cus_alice"]; got != 3500+700+90 {
		t.Fatalf("Stripe bills alice %d; want the ledger's 4200 and someone else's 90", got)
	}
}

// TestReconcileSkippedCustomersFail: a customer with no account of today
// to compare with fails the run when the ledger reported bytes of it in the
// range that no account can be compared for, and is named with them: alice,
// whose account was removed after a batch from before accounts were kept
// was billed (what the ledger says went to cus_alice is still compared
// there), and carol, unknown to the customer store. So does a batch billed
// to an account that is not a Stripe customer. bob, with nothing reported,
// is named and fails nothing.
func TestReconcileSkippedCustomersFail(t *testing.T) {
	w := newWorld(t)
	day := w.day
	w.batchTo(t, alice, "", day.Add(3*time.Hour), 1000, billing.Reported, false)
	w.batch(t, alice, day.Add(4*time.Hour), 2000, billing.Reported, true)
	w.batchTo(t, alice, "other:acct_1", day.Add(5*time.Hour), 70, billing.Reported, false)
	w.batch(t, bob, day.Add(3*time.Hour), 16000, billing.Unbillable, false)
	const carol = "did:mailto:example.com:carol"
	w.batchTo(t, carol, "", day.Add(6*time.Hour), 500, billing.Reported, false)
	w.clock.advance(time.Hour)

	bobOnly := w.reconcileFor(t, day, day.Add(24*time.Hour), true, stripe.ReconcileCustomer{Customer: bob})
	if !bobOnly.OK() || len(bobOnly.Skipped) != 1 || bobOnly.Skipped[0].Bytes != 0 {
		t.Fatalf("bob alone: OK %v, skipped %+v; want bob named with 0 bytes, and OK", bobOnly.OK(), bobOnly.Skipped)
	}

	rep := w.reconcileFor(t, day, day.Add(24*time.Hour), true,
		stripe.ReconcileCustomer{Customer: alice}, stripe.ReconcileCustomer{Customer: bob}, stripe.ReconcileCustomer{Customer: carol, Unknown: true})
	if rep.OK() {
		t.Fatalf("OK with 1570 reported bytes unexamined: %+v", rep.Skipped)
	}
	var skipped []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, fmt.Sprintf("%s: %s: %d", strings.TrimPrefix(s.Customer, "did:mailto:example.com:"), s.Reason, s.Bytes))
	}
	want := "alice: no Stripe account: 1000\nalice: batches billed to \"other:acct_1\", not a Stripe customer: 70\n" +
		"bob: no Stripe account: 0\ncarol: unknown to the customer store: 500"
	if got := strings.Join(skipped, "\n"); got != want {
		t.Fatalf("skipped:\n%s\nwant:\n%s", got, want)
	}
	if got := w.accountHours(rep); got != "stripe:cus_alice 4 2000 2000 match" || !rep.Hours[0].Former || rep.Customers != 1 {
		t.Fatalf("hours:\n%s\n(%d customers compared); want cus_alice's hour, matching", got, rep.Customers)
	}
	if len(rep.Actions) != 0 || w.fake.Calls() != 1 {
		t.Fatalf("sent %+v for customers that could not be compared", rep.Actions)
	}
}
