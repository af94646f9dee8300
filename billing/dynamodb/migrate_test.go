package dynamodb_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
)

// TestMigrateToBatches: entries from before batches get batch items, so
// that Batches lists them for reconciling; their state, reason and resend
// carry over, settling follows the same rules after, adopted entries stay
// as they are, and a second run finds nothing to do.
func TestMigrateToBatches(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	putOldEntry(t, client, tables.Ledger, "bafyold-pending", billing.Pending, "", 0)
	putOldEntry(t, client, tables.Ledger, "bafyold-rejected", billing.Rejected, "no customer", 1)
	putOldEntry(t, client, tables.Ledger, "bafyold-adopted", billing.Reported, "recorded by Storacha's own pipeline", 0)
	day := billing.BatchFilter{Customer: "did:mailto:example.com:old", From: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC)}
	list := func() map[string]billing.Batch {
		t.Helper()
		got := map[string]billing.Batch{}
		if err := l.Batches(ctx, day, func(b billing.Batch) error { got[b.ID] = b; return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("before the migration, Batches listed %v", got)
	}
	if n, err := l.MigrateToBatches(ctx); err != nil || n != 2 {
		t.Fatalf("MigrateToBatches = %d, %v; want 2 (not the adopted entry)", n, err)
	}
	got := list()
	if len(got) != 2 {
		t.Fatalf("after the migration, Batches listed %v; want the two entries egressd sent", got)
	}
	if b := got["bafyold-rejected"]; b.State != billing.Rejected || b.Reason != "no customer" || b.Resend != 1 || b.Bytes != 42 || b.Events != 1 ||
		!b.Timestamp.Equal(time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("migrated batch = %+v; want the entry's state, reason, resend, bytes and servedAt", b)
	}
	// A slow success under the old resend cannot undo the rejection; a
	// resend above it can.
	old := got["bafyold-rejected"]
	old.Resend = 0
	if err := l.Settle(ctx, billing.Settlement{Batch: old, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	checkEntry(t, l, "bafyold-rejected", billing.Rejected)
	if err := l.Settle(ctx, billing.Settlement{Batch: got["bafyold-pending"], State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	checkEntry(t, l, "bafyold-pending", billing.Reported)
	if b, err := l.Batch(ctx, "bafyold-adopted"); err != nil || b.State != billing.Reported || b.Events != 1 {
		t.Fatalf("Batch of the adopted entry = %+v, %v", b, err)
	}
	if n, err := l.MigrateToBatches(ctx); err != nil || n != 0 {
		t.Fatalf("MigrateToBatches again = %d, %v; want 0", n, err)
	}
}

// TestSettleDuringMigration: a settle that reads an entry from before
// batches, then finds the migration gave it a batch item before its update,
// settles the batch item instead of losing the settlement.
func TestSettleDuringMigration(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	putOldEntry(t, client, tables.Ledger, "bafyold", billing.Pending, "", 0)
	migrator := newLedger(client, tables)
	var once sync.Once
	migrateFirst := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("migrateFirst",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if p, ok := in.Parameters.(*awsdynamodb.UpdateItemInput); ok && strings.Contains(*p.UpdateExpression, "resend = :resend") && strings.Contains(*p.ConditionExpression, "attribute_not_exists(#batch)") {
					once.Do(func() {
						if n, err := migrator.MigrateToBatches(ctx); err != nil || n != 1 {
							t.Errorf("MigrateToBatches = %d, %v", n, err)
						}
					})
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
	l := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) { o.APIOptions = append(o.APIOptions, migrateFirst) }), tables)
	if err := l.Reject(ctx, "bafyold", 0, "no meter"); err != nil {
		t.Fatal(err)
	}
	var ran bool
	once.Do(func() { ran = true })
	if ran {
		t.Fatal("the settle never took the path of an entry from before batches")
	}
	checkEntry(t, l, "bafyold", billing.Rejected)
	if b, err := l.Batch(ctx, "bafyold"); err != nil || b.State != billing.Rejected || b.Reason != "no meter" {
		t.Fatalf("batch after a rejection racing the migration = %+v, %v; want rejected", b, err)
	}
}

// checkEntry checks the batch of cause and its one member are in state.
func checkEntry(t *testing.T, l billing.Ledger, cause string, state billing.State) {
	t.Helper()
	b, err := l.Batch(context.Background(), cause)
	if err != nil || b.State != state {
		t.Fatalf("batch %s = %+v, %v; want %s", cause, b, err, state)
	}
	es, err := l.Entries(context.Background(), billing.EntryFilter{Batch: cause})
	if err != nil || len(es) != 1 || es[0].State != state || es[0].Batch != cause {
		t.Fatalf("entries of batch %s = %+v, %v; want one, %s", cause, es, err, state)
	}
}

// TestAccountOfAnEntryFromBeforeBatches: an entry from before batches is
// settled as a batch of one by itself, so the account it was billed to is
// kept on the entry until MigrateToBatches moves it to the batch item;
// either way Batch returns it, and a settlement or rejection that names no
// account keeps it.
func TestAccountOfAnEntryFromBeforeBatches(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	putOldEntry(t, client, tables.Ledger, "bafyold", billing.Pending, "", 0)
	account := func(want string) {
		t.Helper()
		if b, err := l.Batch(ctx, "bafyold"); err != nil || b.Account != want {
			t.Fatalf("batch bafyold = %+v, %v; want account %q", b, err, want)
		}
	}
	b, err := l.Batch(ctx, "bafyold")
	if err != nil {
		t.Fatal(err)
	}
	b.Account = "stripe:cus_1"
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Failed, Reason: "sink down"}); err != nil {
		t.Fatal(err)
	}
	account("stripe:cus_1")
	if err := l.Reject(ctx, "bafyold", 0, "no meter"); err != nil {
		t.Fatal(err)
	}
	account("stripe:cus_1")

	if n, err := l.MigrateToBatches(ctx); err != nil || n != 1 {
		t.Fatalf("MigrateToBatches = %d, %v; want 1", n, err)
	}
	account("stripe:cus_1")
	if got := getItem(t, client, tables.Ledger, "entry#bafyold", "entry"); got["account"] != "" || got["batch"] != "bafyold" {
		t.Fatalf("migrated entry = %v; want its batch named and its account moved to the batch item", got)
	}
	b, err = l.Batch(ctx, "bafyold")
	if err != nil {
		t.Fatal(err)
	}
	b.Resend, b.Account = 1, ""
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	checkEntry(t, l, "bafyold", billing.Reported)
	account("stripe:cus_1")
}
