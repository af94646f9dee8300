// Package ledgertest is the conformance suite every billing.Ledger must
// pass: the embedded SQLite ledger and the DynamoDB one alike.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// Run runs the suite; open returns a new, empty ledger for each subtest.
func Run(t *testing.T, open func(t *testing.T) billing.Ledger) {
	tests := map[string]func(*testing.T, billing.Ledger){
		"RecordOnce":           testRecordOnce,
		"BatchFormation":       testBatchFormation,
		"BatchCaps":            testBatchCaps,
		"LaterEventsNewBatch":  testLaterEventsNewBatch,
		"MonthlyTotals":        testMonthlyTotals,
		"ConcurrentDuplicates": testConcurrentDuplicates,
		"Settle":               testSettle,
		"SettleResend":         testSettleResend,
		"SettleAccount":        testSettleAccount,
		"Reject":               testReject,
		"Count":                testCount,
		"Entries":              testEntries,
		"Batches":              testBatches,
		"InvalidEvent":         testInvalidEvent,
		"MonthlyOverflow":      testMonthlyOverflow,
		"DailyTotals":          testDailyTotals,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

// RunRepair checks that settling or rejecting a batch again brings members
// that disagree with it back into line, as a settle interrupted half way
// (the batch written, some members not) leaves them. desync sets the stored
// state and reason of the entry of cause behind the ledger's back; it is the
// one thing the interface cannot do, so each backend supplies it.
func RunRepair(t *testing.T, open func(t *testing.T) billing.Ledger, desync func(t *testing.T, l billing.Ledger, cause string, state billing.State, reason string)) {
	ctx := context.Background()
	l := open(t)
	_, bs := record(t, l, minute,
		event("rp1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("rp2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("rp3", "did:mailto:a", "did:key:s1", 3, tenAM))
	b := only1(t, bs)
	settle(t, l, b, billing.Reported, "")

	// The batch says reported, one member still says pending.
	desync(t, l, "rp2", billing.Pending, "")
	settle(t, l, b, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "rp1", "rp2", "rp3")

	// Rejecting it makes every member rejected, whatever each said.
	desync(t, l, "rp3", billing.Failed, "half-way")
	if err := l.Reject(ctx, b.ID, 1, "meter_event_customer_not_found"); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, b.ID, billing.Rejected, "meter_event_customer_not_found", "rp1", "rp2", "rp3")

	// Rejecting again repairs too.
	desync(t, l, "rp2", billing.Pending, "")
	if err := l.Reject(ctx, b.ID, 1, "meter_event_customer_not_found"); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, b.ID, billing.Rejected, "meter_event_customer_not_found", "rp1", "rp2", "rp3")
}

var (
	jan31 = time.Date(2025, 1, 31, 23, 59, 59, 0, time.UTC)
	feb1  = time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	tenAM = time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)

	// The rules the worker uses: each event its own batch, or a customer's
	// events of one minute together.
	single = billing.BatchRule{}
	minute = billing.BatchRule{Window: time.Minute}
	hour   = billing.BatchRule{Window: time.Hour}
)

func event(cause, customer, space string, bytes int64, at time.Time) billing.Event {
	return billing.Event{Space: space, Customer: customer, Resource: "bafkreires", Bytes: bytes, ServedAt: at, Cause: cause}
}

func record(t *testing.T, l billing.Ledger, rule billing.BatchRule, evs ...billing.Event) ([]billing.Entry, []billing.Batch) {
	t.Helper()
	es, bs, err := l.Record(context.Background(), evs, rule)
	if err != nil {
		t.Fatalf("Record(%d events): %v", len(evs), err)
	}
	if len(es) != len(evs) {
		t.Fatalf("Record(%d events) returned %d entries, want one per event", len(evs), len(es))
	}
	for i, e := range es {
		if e.Cause != evs[i].Cause {
			t.Fatalf("Record: entry %d is %s, want %s (entries come in the order of the events)", i, e.Cause, evs[i].Cause)
		}
	}
	// No order is promised: sort them so that tests can index them.
	slices.SortFunc(bs, func(a, b billing.Batch) int { return strings.Compare(a.ID, b.ID) })
	return es, bs
}

func settle(t *testing.T, l billing.Ledger, b billing.Batch, state billing.State, reason string) {
	t.Helper()
	if err := l.Settle(context.Background(), billing.Settlement{Batch: b, State: state, Reason: reason}); err != nil {
		t.Fatalf("Settle(%s, %s): %v", b.ID, state, err)
	}
}

func getBatch(t *testing.T, l billing.Ledger, id string) billing.Batch {
	t.Helper()
	b, err := l.Batch(context.Background(), id)
	if err != nil {
		t.Fatalf("Batch(%s): %v", id, err)
	}
	return b
}

func only1(t *testing.T, bs []billing.Batch) billing.Batch {
	t.Helper()
	if len(bs) != 1 {
		t.Fatalf("got %d batches, want 1: %+v", len(bs), bs)
	}
	return bs[0]
}

func usage(t *testing.T, l billing.Ledger, month, customer string) []billing.Usage {
	t.Helper()
	u, err := l.Usage(context.Background(), billing.UsageFilter{Month: month, Customer: customer})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func entries(t *testing.T, l billing.Ledger, f billing.EntryFilter) []billing.Entry {
	t.Helper()
	es, err := l.Entries(context.Background(), f)
	if err != nil {
		t.Fatalf("Entries(%+v): %v", f, err)
	}
	return es
}

// near says two times are the same to the millisecond that stores keep.
func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Millisecond && d > -time.Millisecond
}

func causes(es []billing.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Cause)
	}
	return out
}

// checkBatch compares what matters of a batch: not the times the ledger
// set, only that it set them.
func checkBatch(t *testing.T, got, want billing.Batch) {
	t.Helper()
	if got.ID != want.ID || got.Customer != want.Customer || !got.Timestamp.Equal(want.Timestamp) ||
		got.Bytes != want.Bytes || got.Events != want.Events || got.Resend != want.Resend ||
		got.State != want.State || got.Reason != want.Reason || got.Account != want.Account {
		t.Fatalf("batch = %+v\nwant    %+v", got, want)
	}
	if got.RecordedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Fatalf("batch %s has no RecordedAt or UpdatedAt: %+v", got.ID, got)
	}
}

// checkMembers checks the batch id holds exactly the causes, all in the
// batch's state and reason, and that the batch says so too.
func checkMembers(t *testing.T, l billing.Ledger, id string, state billing.State, reason string, want ...string) {
	t.Helper()
	b := getBatch(t, l, id)
	if b.State != state || b.Reason != reason {
		t.Fatalf("batch %s is %s (%q), want %s (%q)", id, b.State, b.Reason, state, reason)
	}
	es := entries(t, l, billing.EntryFilter{Batch: id, Limit: 1000})
	if got := causes(es); !slices.Equal(got, want) {
		t.Fatalf("members of %s = %v, want %v", id, got, want)
	}
	var bytes int64
	for _, e := range es {
		if e.Batch != id || e.State != state || e.Reason != reason {
			t.Fatalf("member %+v disagrees with its batch %s: %s (%q)", e, id, state, reason)
		}
		bytes += e.Bytes
	}
	if b.Events != len(es) || b.Bytes != bytes {
		t.Fatalf("batch %s says %d events of %d bytes, its members are %d of %d", id, b.Events, b.Bytes, len(es), bytes)
	}
}

func checkCounts(t *testing.T, l billing.Ledger, f billing.UsageFilter, want map[billing.State]int64) {
	t.Helper()
	got, err := l.Count(context.Background(), f)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	for _, s := range billing.States {
		if _, ok := want[s]; !ok {
			want[s] = 0
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts for %+v = %v, want %v", f, got, want)
	}
}

func testRecordOnce(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	if es, bs, err := l.Record(ctx, nil, single); err != nil || len(es) != 0 || len(bs) != 0 {
		t.Fatalf("Record(nothing) = %v, %v, %v", es, bs, err)
	}
	// A servedAt finer than stores keep: the stored one is right to the millisecond.
	at := jan31.Add(-time.Hour + 123456789*time.Nanosecond)
	ev := event("bafy-once", "did:mailto:a", "did:key:s1", 100, at)
	es, bs := record(t, l, single, ev)
	e, b := es[0], only1(t, bs)
	if e.State != billing.Pending || e.Bytes != 100 || e.Batch != ev.Cause {
		t.Fatalf("first Record = %+v; want a pending entry in the batch of its cause", e)
	}
	// Stores keep times to the millisecond: compare the rest exactly.
	want := billing.Batch{ID: ev.Cause, Customer: "did:mailto:a", Timestamp: at, Bytes: 100, Events: 1, State: billing.Pending}
	stored := getBatch(t, l, ev.Cause)
	for _, got := range []billing.Batch{b, stored} {
		if !near(got.Timestamp, at) {
			t.Fatalf("batch timestamp %v, want %v to the millisecond", got.Timestamp, at)
		}
		got.Timestamp = at
		checkBatch(t, got, want)
	}

	again := ev
	again.Bytes = 999 // a duplicate never changes what was counted
	es, bs = record(t, l, single, again)
	if e := es[0]; e.Bytes != 100 || e.State != billing.Pending || e.Batch != ev.Cause || len(bs) != 0 {
		t.Fatalf("second Record = %+v, batches %+v; want the stored entry and no batch", e, bs)
	}
	if !near(es[0].ServedAt, at) {
		t.Fatalf("stored servedAt %v, want %v to the millisecond", es[0].ServedAt, at)
	}
	if es[0].RecordedAt.IsZero() {
		t.Fatalf("stored entry has no RecordedAt: %+v", es[0])
	}

	// A cause twice in one call is one event: the same entry twice, counted once.
	twice := event("bafy-twice", "did:mailto:a", "did:key:s1", 5, jan31)
	es, bs = record(t, l, minute, twice, twice)
	if b := only1(t, bs); b.ID != twice.Cause || b.Events != 1 || b.Bytes != 5 {
		t.Fatalf("batch of a repeated cause = %+v, want one event of 5 bytes", b)
	}
	if es[0].Batch != twice.Cause || es[1].Batch != twice.Cause || es[1].State != billing.Pending {
		t.Fatalf("entries of a repeated cause = %+v", es)
	}

	got := usage(t, l, "2025-01", "")
	wantUsage := []billing.Usage{{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-01", Bytes: 105, Events: 2}}
	if !slices.Equal(got, wantUsage) {
		t.Fatalf("usage after duplicates = %+v, want %+v", got, wantUsage)
	}
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Pending: 2})
}

// testBatchFormation records one call's events of two customers, two
// windows and two spaces: a customer's events of one window are one batch,
// whatever their space, stamped with its latest servedAt.
func testBatchFormation(t *testing.T, l billing.Ledger) {
	at := func(m, s int) time.Time {
		return tenAM.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
	}
	evs := []billing.Event{
		event("f-a1", "did:mailto:a", "did:key:s1", 10, at(0, 5)),
		event("f-a2", "did:mailto:a", "did:key:s1", 20, at(0, 50)),
		event("f-b1", "did:mailto:b", "did:key:s3", 5, at(0, 10)),
		event("f-a3", "did:mailto:a", "did:key:s1", 7, at(1, 0)),  // the next minute
		event("f-a4", "did:mailto:a", "did:key:s2", 1, at(0, 30)), // another space, earlier
	}
	es, bs := record(t, l, minute, evs...)
	want := map[string]billing.Batch{
		"f-a1": {ID: "f-a1", Customer: "did:mailto:a", Timestamp: at(0, 50), Bytes: 31, Events: 3, State: billing.Pending},
		"f-b1": {ID: "f-b1", Customer: "did:mailto:b", Timestamp: at(0, 10), Bytes: 5, Events: 1, State: billing.Pending},
		"f-a3": {ID: "f-a3", Customer: "did:mailto:a", Timestamp: at(1, 0), Bytes: 7, Events: 1, State: billing.Pending},
	}
	if len(bs) != len(want) {
		t.Fatalf("Record made %d batches, want %d: %+v", len(bs), len(want), bs)
	}
	for _, b := range bs {
		w, ok := want[b.ID]
		if !ok {
			t.Fatalf("unexpected batch %+v", b)
		}
		checkBatch(t, b, w)
		checkBatch(t, getBatch(t, l, b.ID), w)
	}
	for i, batch := range []string{"f-a1", "f-a1", "f-b1", "f-a3", "f-a1"} {
		if es[i].Batch != batch || es[i].State != billing.Pending {
			t.Fatalf("entry %s = %+v, want pending in batch %s", es[i].Cause, es[i], batch)
		}
	}
	checkMembers(t, l, "f-a1", billing.Pending, "", "f-a1", "f-a2", "f-a4")
	checkMembers(t, l, "f-a3", billing.Pending, "", "f-a3")

	// Without a window, each event is its own batch, even at the same instant.
	_, bs = record(t, l, single,
		event("s1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("s2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("s3", "did:mailto:a", "did:key:s1", 3, tenAM))
	if len(bs) != 3 {
		t.Fatalf("window 0 made %d batches of 3 events: %+v", len(bs), bs)
	}
	for i, b := range bs {
		checkBatch(t, b, billing.Batch{ID: fmt.Sprintf("s%d", i+1), Customer: "did:mailto:a", Timestamp: tenAM, Bytes: int64(i + 1), Events: 1, State: billing.Pending})
	}
	if got := usage(t, l, "2025-01", "did:mailto:a"); len(got) != 2 || got[0].Bytes != 43 || got[0].Events != 6 || got[1].Bytes != 1 || got[1].Events != 1 {
		t.Fatalf("usage of a = %+v, want 43 bytes in 6 events on s1, 1 in 1 on s2", got)
	}
}

// testBatchCaps fills batches to the rule's caps: a batch that is full
// leaves the rest of its window to the next one.
func testBatchCaps(t *testing.T, l billing.Ledger) {
	var evs []billing.Event
	for i := range 5 {
		evs = append(evs, event(fmt.Sprintf("n%d", i), "did:mailto:a", "did:key:s1", 1, tenAM.Add(time.Duration(i)*time.Second)))
	}
	es, bs := record(t, l, billing.BatchRule{Window: time.Hour, MaxEvents: 2}, evs...)
	if len(bs) != 3 {
		t.Fatalf("5 events at most 2 a batch made %d batches: %+v", len(bs), bs)
	}
	for i, w := range []billing.Batch{
		{ID: "n0", Customer: "did:mailto:a", Timestamp: tenAM.Add(time.Second), Bytes: 2, Events: 2, State: billing.Pending},
		{ID: "n2", Customer: "did:mailto:a", Timestamp: tenAM.Add(3 * time.Second), Bytes: 2, Events: 2, State: billing.Pending},
		{ID: "n4", Customer: "did:mailto:a", Timestamp: tenAM.Add(4 * time.Second), Bytes: 1, Events: 1, State: billing.Pending},
	} {
		checkBatch(t, bs[i], w)
	}
	if got := []string{es[0].Batch, es[1].Batch, es[2].Batch, es[3].Batch, es[4].Batch}; !slices.Equal(got, []string{"n0", "n0", "n2", "n2", "n4"}) {
		t.Fatalf("batches of the entries = %v", got)
	}

	_, bs = record(t, l, billing.BatchRule{Window: time.Hour, MaxBytes: 100},
		event("m60", "did:mailto:b", "did:key:s1", 60, tenAM),
		event("m50", "did:mailto:b", "did:key:s1", 50, tenAM),
		event("m40", "did:mailto:b", "did:key:s1", 40, tenAM))
	if len(bs) != 2 || bs[0].ID != "m50" || bs[0].Bytes != 90 || bs[0].Events != 2 || bs[1].ID != "m60" || bs[1].Bytes != 60 {
		t.Fatalf("60, 50 and 40 bytes at most 100 a batch = %+v; want {60} and {50, 40}", bs)
	}
	checkMembers(t, l, "m50", billing.Pending, "", "m40", "m50")
}

// testLaterEventsNewBatch records events for a window already batched, and
// a mix of known and new events: the known ones come back as stored, the
// new ones make a batch of their own.
func testLaterEventsNewBatch(t *testing.T, l billing.Ledger) {
	a1 := event("l-a1", "did:mailto:a", "did:key:s1", 10, tenAM)
	a2 := event("l-a2", "did:mailto:a", "did:key:s1", 20, tenAM.Add(10*time.Second))
	_, bs := record(t, l, minute, a1, a2)
	first := only1(t, bs)
	settle(t, l, first, billing.Reported, "")

	late := event("l-a3", "did:mailto:a", "did:key:s1", 5, tenAM.Add(20*time.Second))
	es, bs := record(t, l, minute, late)
	second := only1(t, bs)
	if second.ID == first.ID || second.ID != "l-a3" || second.Bytes != 5 || second.Events != 1 || es[0].Batch != second.ID {
		t.Fatalf("a late event of a batched window made %+v (entry %+v); want a new batch of its own", second, es[0])
	}

	b1 := event("l-b1", "did:mailto:a", "did:key:s1", 3, tenAM.Add(30*time.Second))
	b2 := event("l-b2", "did:mailto:a", "did:key:s1", 4, tenAM.Add(40*time.Second))
	es, bs = record(t, l, minute, a1, b1, late, b2)
	third := only1(t, bs)
	checkBatch(t, third, billing.Batch{ID: "l-b1", Customer: "did:mailto:a", Timestamp: tenAM.Add(40 * time.Second), Bytes: 7, Events: 2, State: billing.Pending})
	if es[0].Batch != first.ID || es[0].State != billing.Reported || es[0].Bytes != 10 {
		t.Fatalf("known event l-a1 came back as %+v; want the stored, reported entry", es[0])
	}
	if es[2].Batch != second.ID || es[2].State != billing.Pending {
		t.Fatalf("known event l-a3 came back as %+v; want the stored entry", es[2])
	}
	if es[1].Batch != third.ID || es[3].Batch != third.ID {
		t.Fatalf("new events came back as %+v and %+v; want them in %s", es[1], es[3], third.ID)
	}
	checkMembers(t, l, first.ID, billing.Reported, "", "l-a1", "l-a2")
	checkMembers(t, l, second.ID, billing.Pending, "", "l-a3")
	checkMembers(t, l, third.ID, billing.Pending, "", "l-b1", "l-b2")
	if got := usage(t, l, "2025-01", ""); len(got) != 1 || got[0].Bytes != 42 || got[0].Events != 5 {
		t.Fatalf("usage = %+v, want 42 bytes in 5 events", got)
	}
}

func testMonthlyTotals(t *testing.T, l billing.Ledger) {
	paris := time.FixedZone("CET", 3600)
	// One call, batched by the hour: c1 and c3 share a batch but not a space.
	record(t, l, hour,
		event("c1", "did:mailto:a", "did:key:s1", 10, jan31),
		event("c2", "did:mailto:a", "did:key:s1", 20, jan31.Add(-time.Hour)),
		event("c3", "did:mailto:a", "did:key:s2", 5, jan31),
		event("c4", "did:mailto:a", "did:key:s1", 7, feb1),
		// 00:30 in Paris on 1 February is still January in UTC.
		event("c5", "did:mailto:b", "did:key:s3", 3, time.Date(2025, 2, 1, 0, 30, 0, 0, paris)),
	)
	jan := usage(t, l, "2025-01", "")
	wantJan := []billing.Usage{
		{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-01", Bytes: 30, Events: 2},
		{Customer: "did:mailto:a", Space: "did:key:s2", Month: "2025-01", Bytes: 5, Events: 1},
		{Customer: "did:mailto:b", Space: "did:key:s3", Month: "2025-01", Bytes: 3, Events: 1},
	}
	if !slices.Equal(jan, wantJan) {
		t.Fatalf("January = %+v\nwant %+v", jan, wantJan)
	}
	feb := usage(t, l, "2025-02", "did:mailto:a")
	wantFeb := []billing.Usage{{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-02", Bytes: 7, Events: 1}}
	if !slices.Equal(feb, wantFeb) {
		t.Fatalf("February for a = %+v, want %+v", feb, wantFeb)
	}
	if got := usage(t, l, "2025-02", "did:mailto:b"); len(got) != 0 {
		t.Fatalf("February for b = %+v, want nothing", got)
	}
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01", Customer: "did:mailto:a"}, map[billing.State]int64{billing.Pending: 3})
}

// testConcurrentDuplicates records the same events from several goroutines,
// in calls of different sizes, as several workers given the same
// redelivered messages would. Each event is new in exactly one call, and
// exactly one batch holds it.
func testConcurrentDuplicates(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	const events, writers = 30, 6
	var evs []billing.Event
	for i := range events {
		evs = append(evs, event(fmt.Sprintf("dup-%02d", i), "did:mailto:a", "did:key:s1", int64(i+1), tenAM.Add(time.Duration(i)*10*time.Second)))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		fresh   = make(map[string]int)
		batched = make(map[string]billing.Batch)
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := 0; start < events; start += w + 1 {
				chunk := evs[start:min(start+w+1, events)]
				es, bs, err := l.Record(ctx, chunk, minute)
				if err != nil {
					t.Errorf("Record: %v", err)
					return
				}
				mu.Lock()
				made := make(map[string]bool)
				for _, b := range bs {
					made[b.ID] = true
					if _, dup := batched[b.ID]; dup {
						t.Errorf("batch %s made twice", b.ID)
					}
					batched[b.ID] = b
				}
				for _, e := range es {
					if made[e.Batch] {
						fresh[e.Cause]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var sum int64
	count := 0
	for _, b := range batched {
		sum += b.Bytes
		count += b.Events
	}
	if count != events || sum != events*(events+1)/2 {
		t.Errorf("the calls made batches of %d events and %d bytes, want %d and %d", count, sum, events, events*(events+1)/2)
	}
	for _, ev := range evs {
		if n := fresh[ev.Cause]; n != 1 {
			t.Errorf("%s was new %d times, want once", ev.Cause, n)
		}
	}
	held := make(map[string]string)
	for id := range batched {
		for _, e := range entries(t, l, billing.EntryFilter{Batch: id, Limit: 1000}) {
			if other, ok := held[e.Cause]; ok {
				t.Errorf("%s is in batches %s and %s", e.Cause, other, id)
			}
			held[e.Cause] = id
		}
	}
	if len(held) != events {
		t.Errorf("the batches hold %d events, want %d", len(held), events)
	}
	got := usage(t, l, "2025-01", "")
	if len(got) != 1 || got[0].Events != events || got[0].Bytes != events*(events+1)/2 {
		t.Fatalf("totals after concurrent duplicates = %+v, want %d events of %d bytes", got, events, events*(events+1)/2)
	}
}

// testSettle moves batches through the states the worker gives them:
// members follow their batch, a reported batch is final, and settling a
// batch to the state it has is harmless.
func testSettle(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("st-1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("st-2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("st-3", "did:mailto:b", "did:key:s1", 3, tenAM))
	if len(bs) != 2 {
		t.Fatalf("batches = %+v, want 2", bs)
	}
	a, b := bs[0], bs[1]

	settle(t, l, a, billing.Unbillable, billing.ReasonNoAccount)
	checkMembers(t, l, a.ID, billing.Unbillable, billing.ReasonNoAccount, "st-1", "st-2")
	checkMembers(t, l, b.ID, billing.Pending, "", "st-3")

	// A redrive settles the batch it read back from the ledger.
	stored := getBatch(t, l, a.ID)
	if err := l.Settle(ctx, billing.Settlement{Batch: stored, State: billing.Reported},
		billing.Settlement{Batch: b, State: billing.Failed, Reason: "gave up"}); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, a.ID, billing.Reported, "", "st-1", "st-2")
	checkMembers(t, l, b.ID, billing.Failed, "gave up", "st-3")

	// Reported is final: a late failure from a duplicate changes nothing.
	for _, st := range []billing.State{billing.Failed, billing.Unbillable, billing.Pending, billing.Reported} {
		settle(t, l, a, st, "late")
	}
	checkMembers(t, l, a.ID, billing.Reported, "", "st-1", "st-2")
	// Settling a failed batch to failed again only updates the reason.
	settle(t, l, b, billing.Failed, "gave up again")
	checkMembers(t, l, b.ID, billing.Failed, "gave up again", "st-3")

	if err := l.Settle(ctx, billing.Settlement{Batch: billing.Batch{ID: "nope"}, State: billing.Reported}); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Settle of an unknown batch = %v, want ErrNotFound", err)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.State("lost")}); err == nil {
		t.Fatal("Settle accepted an unknown state")
	}
	checkMembers(t, l, b.ID, billing.Failed, "gave up again", "st-3")
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Reported: 2, billing.Failed: 1})
}

// testSettleResend settles under resends: a higher one is stored with the
// state, a lower one is ignored, whatever the state it brings.
func testSettleResend(t *testing.T, l billing.Ledger) {
	_, bs := record(t, l, single, event("sr", "did:mailto:a", "did:key:s1", 1, tenAM))
	b := bs[0]
	b.Resend = 2
	settle(t, l, b, billing.Failed, "sink down")
	if got := getBatch(t, l, b.ID); got.Resend != 2 || got.State != billing.Failed {
		t.Fatalf("after settling under resend 2: %+v", got)
	}
	older := b
	older.Resend = 1
	settle(t, l, older, billing.Reported, "")
	if got := getBatch(t, l, b.ID); got.Resend != 2 || got.State != billing.Failed || got.Reason != "sink down" {
		t.Fatalf("a settle under a lower resend moved the batch: %+v", got)
	}
	checkMembers(t, l, b.ID, billing.Failed, "sink down", "sr")
	settle(t, l, b, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "sr")
}

// testSettleAccount follows the account a batch was billed to, which
// reconciling compares it with: a settlement that names one stores it, one
// that names none (the batch never reached the sink this time) keeps the
// stored one, a rejection keeps it, a redrive to another account replaces
// it, and a settlement too late to apply changes it no more than the
// state. Batch and Batches both return it.
func testSettleAccount(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("ac1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("ac2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("ac3", "did:mailto:a", "did:key:s1", 4, tenAM.Add(time.Minute)))
	if len(bs) != 2 {
		t.Fatalf("batches = %+v, want 2", bs)
	}
	b, other := bs[0], bs[1]
	if b.Account != "" {
		t.Fatalf("a batch just recorded has account %q, want none", b.Account)
	}
	check := func(want billing.Batch) {
		t.Helper()
		checkBatch(t, getBatch(t, l, want.ID), want)
		var listed []billing.Batch
		err := l.Batches(ctx, billing.BatchFilter{Customer: "did:mailto:a", From: tenAM, To: tenAM.Add(time.Hour)}, func(got billing.Batch) error {
			if got.ID == want.ID {
				listed = append(listed, got)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Batches: %v", err)
		}
		if len(listed) != 1 {
			t.Fatalf("Batches listed %s %d times, want once", want.ID, len(listed))
		}
		checkBatch(t, listed[0], want)
	}
	want := billing.Batch{ID: "ac1", Customer: "did:mailto:a", Timestamp: tenAM, Bytes: 3, Events: 2, State: billing.Pending}
	check(want)

	// Sent to cus_1, which failed: the account is stored with the failure.
	sent := b
	sent.Account = "stripe:cus_1"
	settle(t, l, sent, billing.Failed, "sink down")
	want.Account, want.State, want.Reason = "stripe:cus_1", billing.Failed, "sink down"
	check(want)
	checkMembers(t, l, b.ID, billing.Failed, "sink down", "ac1", "ac2")

	// A settlement without an account keeps it.
	settle(t, l, b, billing.Reported, "")
	want.State, want.Reason = billing.Reported, ""
	check(want)

	// Too late to apply: a reported batch keeps its account as its state.
	late := b
	late.Account = "stripe:cus_late"
	settle(t, l, late, billing.Failed, "late")
	check(want)

	// The sink rejects it: the account it was billed to stays.
	if err := l.Reject(ctx, b.ID, 0, "meter_event_customer_not_found"); err != nil {
		t.Fatalf("Reject: %v", err)
	}
	want.State, want.Reason = billing.Rejected, "meter_event_customer_not_found"
	check(want)

	// A redrive sends it to the customer's new account: that is stored.
	resent := getBatch(t, l, b.ID)
	resent.Resend++
	resent.Account = "stripe:cus_2"
	settle(t, l, resent, billing.Reported, "")
	want.Resend, want.Account, want.State, want.Reason = 1, "stripe:cus_2", billing.Reported, ""
	check(want)
	checkMembers(t, l, b.ID, billing.Reported, "", "ac1", "ac2")

	// Accounts are each batch's own; settling several at once stores each.
	other.Account = "stripe:cus_3"
	if err := l.Settle(ctx, billing.Settlement{Batch: other, State: billing.Reported}, billing.Settlement{Batch: resent, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	check(billing.Batch{ID: "ac3", Customer: "did:mailto:a", Timestamp: tenAM.Add(time.Minute), Bytes: 4, Events: 1, State: billing.Reported, Account: "stripe:cus_3"})
	check(want)
}

// testReject follows a batch the sink accepted, then rejected in an
// asynchronous error report: the reported batch and its members become
// rejected with the reason, a second rejection (the same report delivered
// twice) changes nothing else, a slow duplicate's success cannot undo it,
// and counts and listings show it. Then a redrive sends it again under
// resend 1: that moves it, a late report on resend 0 does not, a report on
// resend 1 does.
func testReject(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("rj1", "did:mailto:a", "did:key:s1", 7, tenAM),
		event("rj2", "did:mailto:a", "did:key:s1", 3, tenAM),
		event("rj3", "did:mailto:b", "did:key:s1", 1, tenAM))
	b, other := bs[0], bs[1]
	settle(t, l, b, billing.Reported, "")
	const reason = "meter_event_customer_not_found: No customer with id cus_x"
	for range 2 {
		if err := l.Reject(ctx, b.ID, 0, reason); err != nil {
			t.Fatalf("Reject: %v", err)
		}
	}
	for _, st := range []billing.State{billing.Reported, billing.Failed, billing.Unbillable} {
		settle(t, l, b, st, "late")
	}
	checkMembers(t, l, b.ID, billing.Rejected, reason, "rj1", "rj2")
	if got := getBatch(t, l, b.ID); got.Resend != 0 || got.Bytes != 10 {
		t.Fatalf("rejected batch = %+v, want resend 0 and its 10 bytes", got)
	}
	if es := entries(t, l, billing.EntryFilter{States: []billing.State{billing.Rejected}}); !slices.Equal(causes(es), []string{"rj1", "rj2"}) {
		t.Fatalf("rejected entries = %+v", es)
	}
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Pending: 1, billing.Rejected: 2})
	// The month's total still holds the bytes: they were served; only the
	// billing of them is in question.
	if u := usage(t, l, "2025-01", "did:mailto:a"); len(u) != 1 || u[0].Bytes != 10 || u[0].Events != 2 {
		t.Errorf("usage = %+v, want 10 bytes in 2 events", u)
	}

	// A redrive sends it again under resend 1, and the sink takes it.
	resent := getBatch(t, l, b.ID)
	resent.Resend++
	settle(t, l, resent, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "rj1", "rj2")
	// A late report on the identifier it replaced changes nothing.
	if err := l.Reject(ctx, b.ID, 0, "late: resend 0"); err != nil {
		t.Fatal(err)
	}
	if got := getBatch(t, l, b.ID); got.State != billing.Reported || got.Resend != 1 {
		t.Fatalf("a late rejection of resend 0 moved the batch: %+v", got)
	}
	checkMembers(t, l, b.ID, billing.Reported, "", "rj1", "rj2")
	// A report on resend 1 rejects it again; its own duplicate success cannot undo that.
	if err := l.Reject(ctx, b.ID, 1, reason); err != nil {
		t.Fatal(err)
	}
	settle(t, l, resent, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Rejected, reason, "rj1", "rj2")
	if got := getBatch(t, l, b.ID); got.Resend != 1 {
		t.Fatalf("batch = %+v, want rejected under resend 1", got)
	}

	// Reject applies whatever the state: a pending batch too.
	if err := l.Reject(ctx, other.ID, 0, reason); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, other.ID, billing.Rejected, reason, "rj3")

	if err := l.Reject(ctx, "nope", 0, reason); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Reject of an unknown batch = %v, want ErrNotFound", err)
	}
}

// testCount checks the state counts of a month as batches move between
// states: a batch counts once per member.
func testCount(t *testing.T, l billing.Ledger) {
	states := []billing.State{billing.Reported, billing.Reported, billing.Unbillable, billing.Failed, billing.Pending}
	for i, st := range states {
		_, bs := record(t, l, single, event(fmt.Sprintf("k%d", i), "did:mailto:a", "did:key:s1", 1, jan31))
		if st != billing.Pending {
			settle(t, l, bs[0], st, "why")
		}
	}
	_, bs := record(t, l, minute,
		event("k-m1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("k-m2", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("k-m3", "did:mailto:a", "did:key:s1", 1, tenAM))
	settle(t, l, only1(t, bs), billing.Unbillable, billing.ReasonNoAccount)
	record(t, l, single, event("k-other", "did:mailto:b", "did:key:s2", 1, jan31))
	record(t, l, single, event("k-feb", "did:mailto:a", "did:key:s1", 1, feb1))
	for _, tc := range []struct {
		customer string
		want     map[billing.State]int64
	}{
		{"did:mailto:a", map[billing.State]int64{billing.Pending: 1, billing.Reported: 2, billing.Unbillable: 4, billing.Failed: 1}},
		{"", map[billing.State]int64{billing.Pending: 2, billing.Reported: 2, billing.Unbillable: 4, billing.Failed: 1}},
		{"did:mailto:nobody", map[billing.State]int64{}},
	} {
		checkCounts(t, l, billing.UsageFilter{Month: "2025-01", Customer: tc.customer}, tc.want)
	}
}

func testEntries(t *testing.T, l billing.Ledger) {
	for i := range 25 {
		customer := "did:mailto:a"
		if i%5 == 0 {
			customer = "did:mailto:b"
		}
		_, bs := record(t, l, single, event(fmt.Sprintf("e%02d", i), customer, "did:key:s1", 1, jan31))
		if i%2 == 0 {
			settle(t, l, bs[0], billing.Unbillable, billing.ReasonNoSink)
		}
	}
	// Page through the unbillable entries of customer a, three at a time.
	var got []string
	after := ""
	for {
		page := entries(t, l, billing.EntryFilter{States: []billing.State{billing.Unbillable}, Customer: "did:mailto:a", After: after, Limit: 3})
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d entries, limit 3", len(page))
		}
		for _, e := range page {
			if e.State != billing.Unbillable || e.Customer != "did:mailto:a" || e.Reason != billing.ReasonNoSink || e.Batch != e.Cause {
				t.Fatalf("entry %+v does not match the filter, or is not in the batch of its cause", e)
			}
			got = append(got, e.Cause)
		}
		after = page[len(page)-1].Cause
	}
	var want []string
	for i := range 25 {
		if i%2 == 0 && i%5 != 0 {
			want = append(want, fmt.Sprintf("e%02d", i))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged entries = %v\nwant %v", got, want)
	}
	if all := entries(t, l, billing.EntryFilter{States: []billing.State{billing.Pending, billing.Unbillable}, Limit: 1000}); len(all) != 25 {
		t.Fatalf("all entries: %d, want 25", len(all))
	}

	// The members of one batch, in cause order, paged, and with a state.
	_, bs := record(t, l, minute,
		event("x3", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("x1", "did:mailto:a", "did:key:s2", 1, tenAM),
		event("x2", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("y1", "did:mailto:a", "did:key:s1", 1, tenAM.Add(time.Minute)))
	if len(bs) != 2 || bs[0].ID != "x3" {
		t.Fatalf("batches = %+v, want x3's and y1's", bs)
	}
	if es := entries(t, l, billing.EntryFilter{Batch: "x3"}); !slices.Equal(causes(es), []string{"x1", "x2", "x3"}) {
		t.Fatalf("members of x3 = %v, want x1 x2 x3", causes(es))
	}
	if es := entries(t, l, billing.EntryFilter{Batch: "x3", After: "x1", Limit: 1}); !slices.Equal(causes(es), []string{"x2"}) {
		t.Fatalf("members of x3 after x1, one = %v, want x2", causes(es))
	}
	if es := entries(t, l, billing.EntryFilter{Batch: "x3", States: []billing.State{billing.Reported}}); len(es) != 0 {
		t.Fatalf("reported members of a pending batch = %v", causes(es))
	}
	if es := entries(t, l, billing.EntryFilter{Batch: "x3", Customer: "did:mailto:b"}); len(es) != 0 {
		t.Fatalf("members of a's batch for customer b = %v", causes(es))
	}
	if es := entries(t, l, billing.EntryFilter{Batch: "nope"}); len(es) != 0 {
		t.Fatalf("members of an unknown batch = %v", causes(es))
	}
}

// testBatches lists a customer's batches in a time range, as reconciling
// with the sink's hourly summaries does: From inclusive, To exclusive.
func testBatches(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	record(t, l, minute,
		event("b-0959", "did:mailto:a", "did:key:s1", 1, tenAM.Add(-time.Second)),
		event("b-1000", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("b-1030", "did:mailto:a", "did:key:s1", 4, tenAM.Add(30*time.Minute)),
		event("b-1030b", "did:mailto:a", "did:key:s2", 8, tenAM.Add(30*time.Minute+5*time.Second)),
		event("b-1100", "did:mailto:a", "did:key:s1", 16, tenAM.Add(time.Hour)),
		event("o-1030", "did:mailto:b", "did:key:s1", 32, tenAM.Add(30*time.Minute)))
	list := func(f billing.BatchFilter) map[string]billing.Batch {
		t.Helper()
		got := make(map[string]billing.Batch)
		err := l.Batches(ctx, f, func(b billing.Batch) error {
			if _, dup := got[b.ID]; dup {
				t.Fatalf("batch %s listed twice", b.ID)
			}
			got[b.ID] = b
			return nil
		})
		if err != nil {
			t.Fatalf("Batches(%+v): %v", f, err)
		}
		return got
	}
	got := list(billing.BatchFilter{Customer: "did:mailto:a", From: tenAM, To: tenAM.Add(time.Hour)})
	if len(got) != 2 {
		t.Fatalf("a's batches from 10:00 to 11:00 = %+v, want b-1000 and b-1030", got)
	}
	checkBatch(t, got["b-1000"], billing.Batch{ID: "b-1000", Customer: "did:mailto:a", Timestamp: tenAM, Bytes: 2, Events: 1, State: billing.Pending})
	checkBatch(t, got["b-1030"], billing.Batch{ID: "b-1030", Customer: "did:mailto:a", Timestamp: tenAM.Add(30*time.Minute + 5*time.Second), Bytes: 12, Events: 2, State: billing.Pending})
	if got := list(billing.BatchFilter{Customer: "did:mailto:a", From: tenAM.Add(-time.Hour), To: tenAM.Add(2 * time.Hour)}); len(got) != 4 {
		t.Fatalf("all of a's batches = %+v, want 4", got)
	}
	if got := list(billing.BatchFilter{Customer: "did:mailto:b", From: tenAM, To: tenAM.Add(time.Hour)}); len(got) != 1 || got["o-1030"].Bytes != 32 {
		t.Fatalf("b's batches = %+v, want o-1030", got)
	}
	if got := list(billing.BatchFilter{Customer: "did:mailto:nobody", From: tenAM, To: tenAM.Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("batches of nobody = %+v", got)
	}
	stop := errors.New("enough")
	calls := 0
	err := l.Batches(ctx, billing.BatchFilter{Customer: "did:mailto:a", From: tenAM.Add(-time.Hour), To: tenAM.Add(2 * time.Hour)}, func(billing.Batch) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Batches with fn failing = %v after %d calls, want fn's error after 1", err, calls)
	}
	if err := l.Batches(ctx, billing.BatchFilter{From: tenAM, To: tenAM.Add(time.Hour)}, func(billing.Batch) error { return nil }); err == nil {
		t.Fatal("Batches without a customer returned no error")
	}
	if _, err := l.Batch(ctx, "nope"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Batch of an unknown ID = %v, want ErrNotFound", err)
	}
	// A member that is not the first has no batch of its own.
	if _, err := l.Batch(ctx, "b-1030b"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Batch(b-1030b) = %v, want ErrNotFound", err)
	}
}

// testInvalidEvent records a call with one bad event among good ones: it is
// refused, and nothing of it is recorded.
func testInvalidEvent(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	good := event("good", "did:mailto:a", "did:key:s1", 1, jan31)
	for _, bad := range []billing.Event{
		event("bad", "did:mailto:a", "did:key:s1", 0, jan31),
		event("bad", "did:mailto:a", "did:key:s1", -5, jan31),
		event("", "did:mailto:a", "did:key:s1", 1, jan31),
		event("bad", "", "did:key:s1", 1, jan31),
		event("bad", "did:mailto:a", "", 1, jan31),
		event("bad", "did:mailto:a", "did:key:s1", 1, time.Time{}),
	} {
		if _, _, err := l.Record(ctx, []billing.Event{good, bad}, minute); err == nil {
			t.Fatalf("Record accepted %+v", bad)
		}
	}
	if got := usage(t, l, "2025-01", ""); len(got) != 0 {
		t.Fatalf("a refused call was counted: %+v", got)
	}
	if es := entries(t, l, billing.EntryFilter{}); len(es) != 0 {
		t.Fatalf("a refused call left entries: %+v", es)
	}
	if _, err := l.Batch(ctx, "good"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("a refused call left a batch: %v", err)
	}
	if _, bs := record(t, l, minute, good); len(bs) != 1 {
		t.Fatalf("the good event alone made %+v", bs)
	}
}

// testMonthlyOverflow takes a month's totals to the largest 64-bit integer
// and past it, as events of absurd sizes (a misconfigured gateway, events
// queued before the server's limit) would. A total stays exact and an
// integer; an event it cannot take is kept as failed with its reason, alone
// in its batch, its bytes left out, so it is neither lost nor billed nor
// counted twice; and the month still reads.
func testMonthlyOverflow(t *testing.T, l billing.Ledger) {
	const most = math.MaxInt64
	for _, ev := range []billing.Event{
		event("big-1", "did:mailto:a", "did:key:s1", most-10, jan31),
		event("big-2", "did:mailto:a", "did:key:s1", 10, jan31), // exactly the most a total holds
		event("big-3", "did:mailto:a", "did:key:s2", most, jan31),
		event("big-4", "did:mailto:a", "did:key:s1", most, feb1), // another month starts afresh
	} {
		if es, bs := record(t, l, single, ev); es[0].State != billing.Pending || len(bs) != 1 || bs[0].Bytes != ev.Bytes {
			t.Fatalf("Record(%s, %d bytes) = %+v, %+v; want a pending entry in a new batch", ev.Cause, ev.Bytes, es[0], bs)
		}
	}
	refused := []billing.Event{
		event("over-1", "did:mailto:a", "did:key:s1", 1, jan31),
		event("over-2", "did:mailto:a", "did:key:s2", most, jan31),
	}
	for _, ev := range refused {
		// Twice: a redelivery finds the entry as it was left.
		for try := range 2 {
			es, bs := record(t, l, single, ev)
			e := es[0]
			if e.State != billing.Failed || !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) || e.Bytes != ev.Bytes || e.Batch != ev.Cause || len(bs) != 0 {
				t.Fatalf("Record(%s) try %d = %+v, batches %+v; want a failed entry alone in its batch, with a reason starting %q, and no batch to bill",
					ev.Cause, try+1, e, bs, billing.ReasonTotalOverflow)
			}
		}
		b := getBatch(t, l, ev.Cause)
		if b.State != billing.Failed || b.Events != 1 || !strings.HasPrefix(b.Reason, billing.ReasonTotalOverflow) {
			t.Fatalf("batch of %s = %+v; want a failed batch of one, with the reason", ev.Cause, b)
		}
	}

	// In a batched call, the event that does not fit is set apart; those
	// before and after it that fit are batched and counted.
	record(t, l, single, event("near", "did:mailto:c", "did:key:s3", most-100, jan31))
	es, bs := record(t, l, hour,
		event("fit-1", "did:mailto:c", "did:key:s3", 50, jan31),
		event("no-fit", "did:mailto:c", "did:key:s3", 60, jan31),
		event("fit-2", "did:mailto:c", "did:key:s3", 50, jan31))
	checkBatch(t, only1(t, bs), billing.Batch{ID: "fit-1", Customer: "did:mailto:c", Timestamp: jan31, Bytes: 100, Events: 2, State: billing.Pending})
	if es[1].State != billing.Failed || es[1].Batch != "no-fit" || !strings.HasPrefix(es[1].Reason, billing.ReasonTotalOverflow) {
		t.Fatalf("the event that does not fit = %+v; want failed, alone in its batch", es[1])
	}
	checkMembers(t, l, "fit-1", billing.Pending, "", "fit-1", "fit-2")
	checkMembers(t, l, "no-fit", billing.Failed, es[1].Reason, "no-fit")

	// Refused events count as events of the month, so its events add up to
	// its entries; their bytes are not in the total.
	want := []billing.Usage{
		{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-01", Bytes: most, Events: 3},
		{Customer: "did:mailto:a", Space: "did:key:s2", Month: "2025-01", Bytes: most, Events: 2},
		{Customer: "did:mailto:c", Space: "did:key:s3", Month: "2025-01", Bytes: most, Events: 4},
	}
	if got := usage(t, l, "2025-01", ""); !slices.Equal(got, want) {
		t.Fatalf("January = %+v\nwant %+v", got, want)
	}
	wantFeb := []billing.Usage{{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-02", Bytes: most, Events: 1}}
	if got := usage(t, l, "2025-02", "did:mailto:a"); !slices.Equal(got, wantFeb) {
		t.Fatalf("February = %+v, want %+v", got, wantFeb)
	}
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Pending: 6, billing.Failed: 3})
	failed := entries(t, l, billing.EntryFilter{States: []billing.State{billing.Failed}})
	if got := causes(failed); !slices.Equal(got, []string{"no-fit", "over-1", "over-2"}) {
		t.Fatalf("failed entries = %v, want no-fit, over-1 and over-2", got)
	}
	for _, e := range failed {
		if !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) {
			t.Errorf("entry %s has reason %q, want one starting %q", e.Cause, e.Reason, billing.ReasonTotalOverflow)
		}
	}
}
