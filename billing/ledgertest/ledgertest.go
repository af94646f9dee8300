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
		"MonthlyTotals":        testMonthlyTotals,
		"ConcurrentDuplicates": testConcurrentDuplicates,
		"Mark":                 testMark,
		"MarkStoredEntry":      testMarkStoredEntry,
		"Reject":               testReject,
		"Count":                testCount,
		"Entries":              testEntries,
		"InvalidEvent":         testInvalidEvent,
		"MonthlyOverflow":      testMonthlyOverflow,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

var (
	jan31 = time.Date(2025, 1, 31, 23, 59, 59, 0, time.UTC)
	feb1  = time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
)

func event(cause, customer, space string, bytes int64, at time.Time) billing.Event {
	return billing.Event{Space: space, Customer: customer, Resource: "bafkreires", Bytes: bytes, ServedAt: at, Cause: cause}
}

func record(t *testing.T, l billing.Ledger, ev billing.Event) (billing.Entry, bool) {
	t.Helper()
	e, isNew, err := l.Record(context.Background(), ev)
	if err != nil {
		t.Fatalf("Record(%s): %v", ev.Cause, err)
	}
	return e, isNew
}

func usage(t *testing.T, l billing.Ledger, month, customer string) []billing.Usage {
	t.Helper()
	u, err := l.Usage(context.Background(), billing.UsageFilter{Month: month, Customer: customer})
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func testRecordOnce(t *testing.T, l billing.Ledger) {
	ev := event("bafy-once", "did:mailto:a", "did:key:s1", 100, jan31)
	e, isNew := record(t, l, ev)
	if !isNew || e.State != billing.Pending || e.Cause != ev.Cause || e.Bytes != 100 {
		t.Fatalf("first Record = %+v, new %v; want a new pending entry", e, isNew)
	}
	again := ev
	again.Bytes = 999 // a duplicate never changes what was counted
	e, isNew = record(t, l, again)
	if isNew || e.Bytes != 100 || e.State != billing.Pending {
		t.Fatalf("second Record = %+v, new %v; want the stored entry, not new", e, isNew)
	}
	if !e.ServedAt.Equal(jan31) {
		t.Fatalf("stored servedAt %v, want %v", e.ServedAt, jan31)
	}
	got := usage(t, l, "2025-01", "")
	want := []billing.Usage{{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-01", Bytes: 100, Events: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("usage after a duplicate = %+v, want %+v", got, want)
	}
}

func testMonthlyTotals(t *testing.T, l billing.Ledger) {
	paris := time.FixedZone("CET", 3600)
	for _, ev := range []billing.Event{
		event("c1", "did:mailto:a", "did:key:s1", 10, jan31),
		event("c2", "did:mailto:a", "did:key:s1", 20, jan31.Add(-time.Hour)),
		event("c3", "did:mailto:a", "did:key:s2", 5, jan31),
		event("c4", "did:mailto:a", "did:key:s1", 7, feb1),
		// 00:30 in Paris on 1 February is still January in UTC.
		event("c5", "did:mailto:b", "did:key:s3", 3, time.Date(2025, 2, 1, 0, 30, 0, 0, paris)),
	} {
		record(t, l, ev)
	}
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
	counts, err := l.Count(context.Background(), billing.UsageFilter{Month: "2025-01", Customer: "did:mailto:a"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[billing.State]int64{billing.Pending: 3, billing.Reported: 0, billing.Unbillable: 0, billing.Failed: 0, billing.Rejected: 0}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("January counts for a = %v, want %v", counts, want)
	}
}

// testConcurrentDuplicates records the same events from several goroutines,
// as several workers given the same redelivered messages would.
func testConcurrentDuplicates(t *testing.T, l billing.Ledger) {
	const events, writers = 30, 6
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh = make(map[string]int)
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				ev := event(fmt.Sprintf("dup-%02d", i), "did:mailto:a", "did:key:s1", int64(i+1), jan31)
				_, isNew, err := l.Record(context.Background(), ev)
				if err != nil {
					t.Errorf("Record: %v", err)
					return
				}
				if isNew {
					mu.Lock()
					fresh[ev.Cause]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i := range events {
		if n := fresh[fmt.Sprintf("dup-%02d", i)]; n != 1 {
			t.Errorf("dup-%02d was new %d times, want once", i, n)
		}
	}
	got := usage(t, l, "2025-01", "")
	if len(got) != 1 || got[0].Events != events || got[0].Bytes != events*(events+1)/2 {
		t.Fatalf("totals after concurrent duplicates = %+v, want %d events of %d bytes", got, events, events*(events+1)/2)
	}
}

func testMark(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	ev := event("m1", "did:mailto:a", "did:key:s1", 1, jan31)
	record(t, l, ev)
	state := func() billing.Entry {
		t.Helper()
		es, err := l.Entries(ctx, billing.EntryFilter{})
		if err != nil || len(es) != 1 {
			t.Fatalf("Entries = %v, %v", es, err)
		}
		return es[0]
	}
	if err := l.Mark(ctx, ev, billing.Unbillable, billing.ReasonNoAccount); err != nil {
		t.Fatal(err)
	}
	e := state()
	if e.State != billing.Unbillable || e.Reason != billing.ReasonNoAccount {
		t.Fatalf("after marking unbillable: %+v", e)
	}
	// A redrive marks the entry it listed: its Event must find the entry.
	if err := l.Mark(ctx, e.Event, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	// Reported is final: a late failure from a duplicate changes nothing.
	if err := l.Mark(ctx, ev, billing.Failed, "gave up"); err != nil {
		t.Fatal(err)
	}
	if e := state(); e.State != billing.Reported || e.Reason != "" {
		t.Fatalf("a reported entry was changed: %+v", e)
	}
	if err := l.Mark(ctx, event("nope", "did:mailto:a", "did:key:s1", 1, jan31), billing.Reported, ""); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Mark of an unknown cause = %v, want ErrNotFound", err)
	}
	if err := l.Mark(ctx, ev, billing.State("lost"), ""); err == nil {
		t.Fatal("Mark accepted an unknown state")
	}
}

// testReject follows an event Stripe accepted, then rejected in an
// asynchronous error report: the reported entry becomes rejected with the
// reason, a second rejection (the same report delivered twice) changes
// nothing else, a slow duplicate's success cannot undo it, and counts and
// listings show it. Then a redrive sends it again under resend 1: that
// moves it, a late report on resend 0 does not, a report on resend 1 does.
func testReject(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	ev := event("rj1", "did:mailto:a", "did:key:s1", 7, jan31)
	record(t, l, ev)
	record(t, l, event("rj2", "did:mailto:a", "did:key:s1", 1, jan31))
	if err := l.Mark(ctx, ev, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	const reason = "meter_event_customer_not_found: No customer with id cus_x"
	for range 2 {
		if err := l.Reject(ctx, ev.Cause, 0, reason); err != nil {
			t.Fatalf("Reject: %v", err)
		}
	}
	for _, st := range []billing.State{billing.Reported, billing.Failed, billing.Unbillable} {
		if err := l.Mark(ctx, ev, st, "late"); err != nil {
			t.Fatalf("Mark(%s) of a rejected entry: %v", st, err)
		}
	}
	only := func(state billing.State) billing.Entry {
		t.Helper()
		es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{state}})
		if err != nil || len(es) != 1 || es[0].Cause != ev.Cause || es[0].Bytes != 7 {
			t.Fatalf("%s entries = %+v, %v; want rj1 alone", state, es, err)
		}
		return es[0]
	}
	if e := only(billing.Rejected); e.Reason != reason || e.Resend != 0 {
		t.Fatalf("rejected entry = %+v, want reason %q and resend 0", e, reason)
	}
	got, err := l.Count(ctx, billing.UsageFilter{Month: "2025-01"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[billing.State]int64{billing.Pending: 1, billing.Reported: 0, billing.Unbillable: 0, billing.Failed: 0, billing.Rejected: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
	// The month's total still holds the bytes: they were served; only the
	// billing of them is in question.
	if u := usage(t, l, "2025-01", "did:mailto:a"); len(u) != 1 || u[0].Bytes != 8 || u[0].Events != 2 {
		t.Errorf("usage = %+v, want 8 bytes in 2 events", u)
	}

	// A redrive sends it again under resend 1, and Stripe takes it.
	resent := ev
	resent.Resend = 1
	if err := l.Mark(ctx, resent, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	if e := only(billing.Reported); e.Resend != 1 || e.Reason != "" {
		t.Fatalf("redriven entry = %+v, want reported under resend 1", e)
	}
	// A late report on the identifier it replaced changes nothing.
	if err := l.Reject(ctx, ev.Cause, 0, "late: resend 0"); err != nil {
		t.Fatal(err)
	}
	if e := only(billing.Reported); e.Resend != 1 {
		t.Fatalf("a late rejection of resend 0 moved the entry: %+v", e)
	}
	// A report on resend 1 rejects it again.
	if err := l.Reject(ctx, ev.Cause, 1, reason); err != nil {
		t.Fatal(err)
	}
	if e := only(billing.Rejected); e.Resend != 1 || e.Reason != reason {
		t.Fatalf("entry = %+v, want rejected under resend 1", e)
	}
	if err := l.Mark(ctx, resent, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	only(billing.Rejected)

	if err := l.Reject(ctx, "nope", 0, reason); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Reject of an unknown cause = %v, want ErrNotFound", err)
	}
}

// testMarkStoredEntry marks through the entry Record returns for a
// duplicate, as the worker does, with a servedAt finer than stores keep.
func testMarkStoredEntry(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	at := jan31.Add(-time.Hour + 123456789*time.Nanosecond)
	ev := event("fine", "did:mailto:a", "did:key:s1", 9, at)
	if _, isNew := record(t, l, ev); !isNew {
		t.Fatal("first Record was not new")
	}
	stored, isNew := record(t, l, ev)
	if isNew {
		t.Fatal("second Record was new")
	}
	if d := stored.ServedAt.Sub(at); d > time.Millisecond || d < -time.Millisecond {
		t.Fatalf("stored servedAt %v, want %v to the millisecond", stored.ServedAt, at)
	}
	if err := l.Mark(ctx, stored.Event, billing.Failed, "gave up"); err != nil {
		t.Fatalf("Mark(the stored entry): %v", err)
	}
	if err := l.Mark(ctx, ev, billing.Unbillable, billing.ReasonNoKey); err != nil {
		t.Fatalf("Mark(the event as sent): %v", err)
	}
	es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Unbillable}})
	if err != nil || len(es) != 1 || es[0].Cause != "fine" || es[0].Reason != billing.ReasonNoKey {
		t.Fatalf("unbillable entries = %+v, %v; want the one marked", es, err)
	}
}

// testCount checks the state counts of a month as entries move between states.
func testCount(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	states := []billing.State{billing.Reported, billing.Reported, billing.Unbillable, billing.Failed, billing.Pending}
	for i, st := range states {
		ev := event(fmt.Sprintf("k%d", i), "did:mailto:a", "did:key:s1", 1, jan31)
		record(t, l, ev)
		if st != billing.Pending {
			if err := l.Mark(ctx, ev, st, "why"); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(t, l, event("k-other", "did:mailto:b", "did:key:s2", 1, jan31))
	record(t, l, event("k-feb", "did:mailto:a", "did:key:s1", 1, feb1))
	for _, tc := range []struct {
		customer string
		want     map[billing.State]int64
	}{
		{"did:mailto:a", map[billing.State]int64{billing.Pending: 1, billing.Reported: 2, billing.Unbillable: 1, billing.Failed: 1, billing.Rejected: 0}},
		{"", map[billing.State]int64{billing.Pending: 2, billing.Reported: 2, billing.Unbillable: 1, billing.Failed: 1, billing.Rejected: 0}},
		{"did:mailto:nobody", map[billing.State]int64{billing.Pending: 0, billing.Reported: 0, billing.Unbillable: 0, billing.Failed: 0, billing.Rejected: 0}},
	} {
		got, err := l.Count(ctx, billing.UsageFilter{Month: "2025-01", Customer: tc.customer})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("January counts for %q = %v, want %v", tc.customer, got, tc.want)
		}
	}
}

func testEntries(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	for i := range 25 {
		customer := "did:mailto:a"
		if i%5 == 0 {
			customer = "did:mailto:b"
		}
		ev := event(fmt.Sprintf("e%02d", i), customer, "did:key:s1", 1, jan31)
		record(t, l, ev)
		if i%2 == 0 {
			if err := l.Mark(ctx, ev, billing.Unbillable, billing.ReasonNoKey); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Page through the unbillable entries of customer a, three at a time.
	var got []string
	after := ""
	for {
		page, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Unbillable}, Customer: "did:mailto:a", After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d entries, limit 3", len(page))
		}
		for _, e := range page {
			if e.State != billing.Unbillable || e.Customer != "did:mailto:a" || e.Reason != billing.ReasonNoKey {
				t.Fatalf("entry %+v does not match the filter", e)
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
	all, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Pending, billing.Unbillable}, Limit: 1000})
	if err != nil || len(all) != 25 {
		t.Fatalf("all entries: %d, %v; want 25", len(all), err)
	}
}

func testInvalidEvent(t *testing.T, l billing.Ledger) {
	bad := event("bad", "did:mailto:a", "did:key:s1", 0, jan31)
	if _, _, err := l.Record(context.Background(), bad); err == nil {
		t.Fatal("Record accepted an event of 0 bytes")
	}
	if got := usage(t, l, "2025-01", ""); len(got) != 0 {
		t.Fatalf("a rejected event was counted: %+v", got)
	}
}

// testMonthlyOverflow takes a month's totals to the largest 64-bit integer
// and past it, as events of absurd sizes (a misconfigured gateway, events
// queued before the server's limit) would. A total stays exact and an
// integer; an event it cannot take is kept as failed with its reason, its
// bytes left out, so it is neither lost nor billed nor counted twice; and
// the month still reads.
func testMonthlyOverflow(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	const most = math.MaxInt64
	for _, ev := range []billing.Event{
		event("big-1", "did:mailto:a", "did:key:s1", most-10, jan31),
		event("big-2", "did:mailto:a", "did:key:s1", 10, jan31), // exactly the most a total holds
		event("big-3", "did:mailto:a", "did:key:s2", most, jan31),
		event("big-4", "did:mailto:a", "did:key:s1", most, feb1), // another month starts afresh
	} {
		if e, isNew := record(t, l, ev); !isNew || e.State != billing.Pending {
			t.Fatalf("Record(%s, %d bytes) = %+v, new %v; want a new pending entry", ev.Cause, ev.Bytes, e, isNew)
		}
	}
	refused := []billing.Event{
		event("over-1", "did:mailto:a", "did:key:s1", 1, jan31),
		event("over-2", "did:mailto:a", "did:key:s2", most, jan31),
	}
	for _, ev := range refused {
		// Twice: a redelivery finds the entry as it was left.
		for try := range 2 {
			e, isNew := record(t, l, ev)
			// New the first time (but already settled), the stored entry after.
			if isNew != (try == 0) || e.State != billing.Failed || !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) || e.Bytes != ev.Bytes {
				t.Fatalf("Record(%s) try %d = %+v, new %v; want a failed entry, new only the first time, with a reason starting %q",
					ev.Cause, try+1, e, isNew, billing.ReasonTotalOverflow)
			}
		}
	}
	// Refused events count as events of the month, so its events add up to
	// its entries; their bytes are not in the total.
	want := []billing.Usage{
		{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-01", Bytes: most, Events: 3},
		{Customer: "did:mailto:a", Space: "did:key:s2", Month: "2025-01", Bytes: most, Events: 2},
	}
	if got := usage(t, l, "2025-01", ""); !slices.Equal(got, want) {
		t.Fatalf("January = %+v\nwant %+v", got, want)
	}
	wantFeb := []billing.Usage{{Customer: "did:mailto:a", Space: "did:key:s1", Month: "2025-02", Bytes: most, Events: 1}}
	if got := usage(t, l, "2025-02", "did:mailto:a"); !slices.Equal(got, wantFeb) {
		t.Fatalf("February = %+v, want %+v", got, wantFeb)
	}
	counts, err := l.Count(ctx, billing.UsageFilter{Month: "2025-01"})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[billing.State]int64{billing.Pending: 3, billing.Reported: 0, billing.Unbillable: 0, billing.Failed: 2, billing.Rejected: 0}
	if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
		t.Fatalf("January counts = %v, want %v", counts, wantCounts)
	}
	failed, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Failed}})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 2 || failed[0].Cause != "over-1" || failed[1].Cause != "over-2" {
		t.Fatalf("failed entries = %+v, want over-1 and over-2", failed)
	}
	for _, e := range failed {
		if !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) {
			t.Errorf("entry %s has reason %q, want one starting %q", e.Cause, e.Reason, billing.ReasonTotalOverflow)
		}
	}
}
