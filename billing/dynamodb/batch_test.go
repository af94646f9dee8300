package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
)

var noon = time.Date(2025, 5, 6, 12, 0, 0, 0, time.UTC)

func events(n int, prefix, customer string, space func(i int) string) []billing.Event {
	var evs []billing.Event
	for i := range n {
		evs = append(evs, billing.Event{
			Space: space(i), Customer: customer, Resource: "bafkreires", Bytes: int64(i + 1),
			ServedAt: noon.Add(time.Duration(i) * time.Millisecond), Cause: fmt.Sprintf("%s%03d", prefix, i),
		})
	}
	return evs
}

func oneSpace(int) string { return "did:key:z6Mkhot" }

// TestHotSpaceOneMonthlyWritePerBatch: a hot space's events of one window
// update its monthly row once per batch, not once per event, and still
// count every event and byte.
func TestHotSpaceOneMonthlyWritePerBatch(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	tx := &transactions{}
	l := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) { o.APIOptions = append(o.APIOptions, tx.register) }), tables)
	evs := events(200, "hot", "did:mailto:example.com:hot", oneSpace)
	es, bs, err := l.Record(ctx, evs, minute)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range bs {
		sizes = append(sizes, b.Events)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{8, 96, 96}) {
		t.Fatalf("200 events of one space made batches of %v events, want 96, 96 and 8 (a transaction's 100 actions)", sizes)
	}
	if got := tx.actions["Update "+tables.Monthly]; got != 3 {
		t.Fatalf("the monthly row took %d updates for 3 batches", got)
	}
	for i, e := range es {
		if e.State != billing.Pending || !slices.ContainsFunc(bs, func(b billing.Batch) bool { return b.ID == e.Batch }) {
			t.Fatalf("entry %d = %+v, want pending in one of the batches made", i, e)
		}
	}
	row := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:hot", "2025-05#did:key:z6Mkhot")
	if row["eventCount"] != "200" || row["bytes"] != "20100" {
		t.Fatalf("monthly row = %v, want 200 events of 20100 bytes", row)
	}
}

// TestBatchFitsOneTransaction: a batch of events in many spaces needs a
// monthly ADD, a month item and a daily ADD per space, so it is split to fit DynamoDB's
// 100 actions a transaction.
func TestBatchFitsOneTransaction(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	calls := &callCounter{}
	l := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) { o.APIOptions = append(o.APIOptions, calls.register) }), tables)
	evs := events(40, "sp", "did:mailto:example.com:many", func(i int) string { return fmt.Sprintf("did:key:z6Mkspace%02d", i) })
	_, bs, err := l.Record(ctx, evs, minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].ID != "sp000" || bs[0].Events != 24 || bs[1].ID != "sp024" || bs[1].Events != 16 {
		t.Fatalf("40 events of 40 spaces made %+v; want 24 (24 entries, 72 monthly, month and daily items, the batch) then 16", bs)
	}
	if got := calls.take(); !strings.Contains(got, "TransactWriteItems/97 TransactWriteItems/65") {
		t.Fatalf("calls %q, want transactions of 97 and 65 actions", got)
	}
	u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-05"})
	if err != nil || len(u) != 40 {
		t.Fatalf("Usage of the month = %d rows, %v; want all 40 spaces registered", len(u), err)
	}
}

// TestRaceInsideTransaction: another worker records one of the events
// between this Record's read and its transaction. The transaction is
// cancelled on that entry's condition; the event comes back as the other
// worker stored it, and the rest form a batch of their own, counted once.
func TestRaceInsideTransaction(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	other := newLedger(client, tables)
	evs := events(3, "race", "did:mailto:example.com:race", oneSpace)
	var once sync.Once
	raced := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("race",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := in.Parameters.(*awsdynamodb.TransactWriteItemsInput); ok {
					once.Do(func() {
						if _, _, err := other.Record(ctx, evs[:1], minute); err != nil {
							t.Error(err)
						}
					})
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
	l := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) { o.APIOptions = append(o.APIOptions, raced) }), tables)
	es, bs, err := l.Record(ctx, evs, minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].ID != "race001" || bs[0].Events != 2 || bs[0].Bytes != 5 {
		t.Fatalf("batches = %+v, want race001 with the two events the other worker did not record", bs)
	}
	if es[0].Batch != "race000" || es[1].Batch != "race001" || es[2].Batch != "race001" {
		t.Fatalf("entries = %+v", es)
	}
	row := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:race", "2025-05#did:key:z6Mkhot")
	if row["eventCount"] != "3" || row["bytes"] != "6" {
		t.Fatalf("monthly row = %v, want 3 events of 6 bytes", row)
	}
}

// TestEntriesBeforeBatches: entries written before batches (no batch
// attribute, their own resend) read, settle and reject as batches of one,
// on the same rules.
func TestEntriesBeforeBatches(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	putOldEntry(t, client, tables.Ledger, "bafyold", billing.Pending, "", 1)
	b, err := l.Batch(ctx, "bafyold")
	if err != nil || b.ID != "bafyold" || b.Events != 1 || b.Bytes != 42 || b.Resend != 1 || b.State != billing.Pending || b.Customer != "did:mailto:example.com:old" {
		t.Fatalf("Batch of an old entry = %+v, %v; want a pending batch of one under resend 1", b, err)
	}
	es, bs, err := l.Record(ctx, []billing.Event{{Space: "did:key:z6Mkold", Customer: "did:mailto:example.com:old", Resource: "bafkreiold",
		Bytes: 42, ServedAt: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Cause: "bafyold"}}, minute)
	if err != nil || len(bs) != 0 || es[0].Batch != "bafyold" || es[0].State != billing.Pending {
		t.Fatalf("Record of an old entry = %+v, %+v, %v; want it as stored", es, bs, err)
	}
	lower := b
	lower.Resend = 0
	if err := l.Settle(ctx, billing.Settlement{Batch: lower, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Batch(ctx, "bafyold"); got.State != billing.Pending {
		t.Fatalf("a settle under a lower resend moved the old entry: %+v", got)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	if err := l.Reject(ctx, "bafyold", 1, "no customer"); err != nil {
		t.Fatal(err)
	}
	got, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Rejected}})
	if err != nil || len(got) != 1 || got[0].Cause != "bafyold" || got[0].Batch != "bafyold" || got[0].Reason != "no customer" {
		t.Fatalf("rejected entries = %+v, %v; want the old entry, rejected", got, err)
	}
	if got, err := l.Entries(ctx, billing.EntryFilter{Batch: "bafyold"}); err != nil || len(got) != 1 {
		t.Fatalf("entries of the old batch = %+v, %v", got, err)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Batch(ctx, "bafyold"); got.State != billing.Rejected {
		t.Fatalf("a slow success undid the rejection of an old entry: %+v", got)
	}
}

// putOldEntry writes an entry as the ledger did before batches, resend and
// all: 42 bytes of did:mailto:example.com:old served on 1 May 2025.
func putOldEntry(t *testing.T, client *awsdynamodb.Client, table, cause string, state billing.State, reason string, resend int) {
	t.Helper()
	putItem(t, client, table, map[string]types.AttributeValue{
		"pk": s("entry#" + cause), "sk": s("entry"), "cause": s(cause), "space": s("did:key:z6Mkold"),
		"customer": s("did:mailto:example.com:old"), "resource": s("bafkreiold"), "servedAt": s("2025-05-01T00:00:00.000Z"),
		"month": s("2025-05"), "bytes": n("42"), "state": s(string(state)), "reason": s(reason),
		"recordedAt": s("2025-05-01T00:00:01.000Z"), "updatedAt": s("2025-05-01T00:00:01.000Z"),
		"stateKey": s(string(state) + "#3"), "stateSort": s(cause), "resend": n(fmt.Sprint(resend)),
	})
}

// TestSettleStoppedHalfWay: a Settle that updates the batch and fails on
// its members (a stop, a network error) leaves the members pending; the
// worker, finding them so with their batch settled, settles again, and the
// members follow.
func TestSettleStoppedHalfWay(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	_, bs, err := l.Record(ctx, events(30, "half", "did:mailto:example.com:half", oneSpace), minute)
	if err != nil || len(bs) != 1 {
		t.Fatalf("Record = %+v, %v", bs, err)
	}
	var updates atomic.Int32
	failMembers := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("failMembers",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if p, ok := in.Parameters.(*awsdynamodb.UpdateItemInput); ok {
					if pk, _ := p.Key["pk"].(*types.AttributeValueMemberS); pk != nil && strings.HasPrefix(pk.Value, "entry#") && updates.Add(1) > 10 {
						return middleware.InitializeOutput{}, middleware.Metadata{}, errors.New("stopped")
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
	broken := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) { o.APIOptions = append(o.APIOptions, failMembers) }), tables)
	if err := broken.Settle(ctx, billing.Settlement{Batch: bs[0], State: billing.Reported}); err == nil {
		t.Fatal("Settle with failing member updates returned no error")
	}
	pending, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Pending}})
	if err != nil || len(pending) == 0 || len(pending) == 30 {
		t.Fatalf("after a stop half way, %d members pending (%v); want some but not all", len(pending), err)
	}
	if b, _ := l.Batch(ctx, bs[0].ID); b.State != billing.Reported {
		t.Fatalf("batch = %+v, want reported", b)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: bs[0], State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	reported, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Reported}, Batch: bs[0].ID, Limit: 100})
	if err != nil || len(reported) != 30 {
		t.Fatalf("after settling again, %d members reported (%v), want 30", len(reported), err)
	}
	if pending, _ := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Pending}}); len(pending) != 0 {
		t.Fatalf("the state index still lists %d pending members", len(pending))
	}
}

// TestConcurrentSettlesAgree: settlements of one batch racing from several
// workers, in any order, leave every member in the state and reason the
// batch ends in.
func TestConcurrentSettlesAgree(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	_, bs, err := newLedger(client, tables).Record(ctx, events(20, "agree", "did:mailto:example.com:agree", oneSpace), minute)
	if err != nil || len(bs) != 1 {
		t.Fatalf("Record = %+v, %v", bs, err)
	}
	var wg sync.WaitGroup
	for w := range 6 {
		l := newLedger(client, tables)
		wg.Go(func() {
			for i := range 4 {
				st := []billing.State{billing.Failed, billing.Unbillable}[(w+i)%2]
				if err := l.Settle(ctx, billing.Settlement{Batch: bs[0], State: st, Reason: fmt.Sprintf("worker %d try %d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	l := newLedger(client, tables)
	b, err := l.Batch(ctx, bs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	members, err := l.Entries(ctx, billing.EntryFilter{Batch: b.ID, Limit: 100})
	if err != nil || len(members) != 20 {
		t.Fatalf("members = %d, %v", len(members), err)
	}
	for _, e := range members {
		if e.State != b.State || e.Reason != b.Reason {
			t.Fatalf("member %s is %s (%q), its batch %s (%q)", e.Cause, e.State, e.Reason, b.State, b.Reason)
		}
	}
	if listed, _ := l.Entries(ctx, billing.EntryFilter{States: []billing.State{b.State}, Limit: 100}); len(listed) != 20 {
		t.Fatalf("the state index lists %d members as %s, want 20", len(listed), b.State)
	}
}
