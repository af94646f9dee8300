package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

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
