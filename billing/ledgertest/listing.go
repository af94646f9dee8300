package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

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
