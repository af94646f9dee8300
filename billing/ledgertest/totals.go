package ledgertest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

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
