package ledgertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// testDailyTotals: the daily totals count what the monthly ones count, per
// customer, space and UTC day, once per event however often it is recorded,
// and a range read returns exactly the days asked for.
func testDailyTotals(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	a, b := "did:mailto:a", "did:mailto:b"
	record(t, l, minute,
		event("d1", a, "did:key:s1", 10, jan31),
		event("d2", a, "did:key:s1", 5, jan31.Add(-time.Hour)),
		event("d3", a, "did:key:s1", 7, feb1),
		event("d4", a, "did:key:s2", 1, feb1.Add(36*time.Hour)),
		event("d5", b, "did:key:s3", 99, feb1))
	// A duplicate, and a batch of the same day later: counted once, added.
	record(t, l, minute, event("d1", a, "did:key:s1", 10, jan31), event("d6", a, "did:key:s1", 3, jan31.Add(-2*time.Hour)))

	got, err := l.Daily(ctx, billing.DailyFilter{Customer: a, From: jan31.Add(-48 * time.Hour), To: feb1.AddDate(0, 0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.DailyUsage{
		{Customer: a, Space: "did:key:s1", Day: "2025-01-31", Bytes: 18, Events: 3},
		{Customer: a, Space: "did:key:s1", Day: "2025-02-01", Bytes: 7, Events: 1},
		{Customer: a, Space: "did:key:s2", Day: "2025-02-02", Bytes: 1, Events: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Daily = %v\nwant %v", got, want)
	}

	// To is exclusive, From inclusive; Spaces narrows.
	got, err = l.Daily(ctx, billing.DailyFilter{Customer: a, From: feb1, To: feb1.AddDate(0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Day != "2025-02-01" || got[0].Space != "did:key:s1" {
		t.Fatalf("Daily of 2025-02-01 = %v, want s1's day only", got)
	}
	got, err = l.Daily(ctx, billing.DailyFilter{Customer: a, Spaces: []string{"did:key:s2"}, From: jan31, To: feb1.AddDate(0, 0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Space != "did:key:s2" || got[0].Bytes != 1 {
		t.Fatalf("Daily of s2 = %v, want its one day", got)
	}
	got, err = l.Daily(ctx, billing.DailyFilter{Customer: "did:mailto:nobody", From: jan31, To: feb1})
	if err != nil || len(got) != 0 {
		t.Fatalf("Daily of an unknown customer = %v, %v; want nothing", got, err)
	}

	// The days of a month add up to its monthly total.
	usage, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-01", Customer: a})
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 1 || usage[0].Bytes != 18 || usage[0].Events != 3 {
		t.Fatalf("January usage = %v, want the 18 bytes of 3 events its days hold", usage)
	}
}
