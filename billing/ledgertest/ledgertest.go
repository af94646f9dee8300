// Package ledgertest is the conformance suite every billing.Ledger must
// pass: the embedded SQLite ledger and the DynamoDB one alike.
package ledgertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
