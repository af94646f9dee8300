package dynamodb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/dynamodb"
	"github.com/egressd/egressd/internal/awstest"
)

var minute = billing.BatchRule{Window: time.Minute}

// TestRowsAsW3infraWritesThem checks the attribute names and encodings that
// Storacha's reports read (billing/data/egress.js and egress-monthly.js in
// w3infra): their rows hold those and nothing else, a batch of two events
// adds to the monthly row as two events; egressd's state is in its own table.
func TestRowsAsW3infraWritesThem(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	ev := billing.Event{
		Space: "did:key:z6Mkspace", Customer: "did:mailto:example.com:alice", Resource: "bafkreiresource",
		Bytes: 1024, ServedAt: time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC), Cause: "bafyreicause",
	}
	other := ev
	other.Cause, other.Bytes, other.ServedAt = "bafyreiother", 6, ev.ServedAt.Add(-time.Second)
	var batch billing.Batch
	for range 2 {
		_, bs, err := l.Record(ctx, []billing.Event{ev, other}, minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 1 {
			batch = bs[0]
		}
	}
	row := getItem(t, client, tables.Events, "did:key:z6Mkspace#bafkreiresource", "2025-03-04T05:06:07.890Z#bafyreicause")
	for name, want := range map[string]string{
		"space": ev.Space, "customer": ev.Customer, "resource": ev.Resource, "cause": ev.Cause,
		"servedAt": "2025-03-04T05:06:07.890Z", "bytes": "1024",
	} {
		if got := row[name]; got != want {
			t.Errorf("events row %s = %q, want %q", name, got, want)
		}
	}
	if len(row) != 8 {
		t.Errorf("events row has attributes beyond w3infra's: %v", row)
	}
	if getItem(t, client, tables.Events, "did:key:z6Mkspace#bafkreiresource", "2025-03-04T05:06:06.890Z#bafyreiother") == nil {
		t.Error("no events row for the batch's second event")
	}
	monthly := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:alice", "2025-03#did:key:z6Mkspace")
	for name, want := range map[string]string{"space": ev.Space, "month": "2025-03", "bytes": "1030", "eventCount": "2"} {
		if got := monthly[name]; got != want {
			t.Errorf("monthly row %s = %q, want %q (after a duplicate too)", name, got, want)
		}
	}
	if len(monthly) != 6 {
		t.Errorf("monthly row has attributes beyond w3infra's: %v", monthly)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: batch, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	entry := getItem(t, client, tables.Ledger, "entry#bafyreicause", "entry")
	if entry["state"] != "reported" || entry["month"] != "2025-03" || entry["batch"] != "bafyreicause" {
		t.Errorf("ledger entry after Settle = %v, want reported in 2025-03, in its own batch", entry)
	}
	item := getItem(t, client, tables.Ledger, "batch#did:mailto:example.com:alice", "1741064767890#bafyreicause")
	if item["state"] != "reported" || item["bytes"] != "1030" || item["events"] != "2" {
		t.Errorf("batch item after Settle = %v, want reported, 1030 bytes in 2 events", item)
	}
	if after := getItem(t, client, tables.Events, "did:key:z6Mkspace#bafkreiresource", "2025-03-04T05:06:07.890Z#bafyreicause"); len(after) != 8 {
		t.Errorf("Settle touched Storacha's events row: %v", after)
	}
}

// TestReadsW3infraRows: an event w3infra recorded itself (its events and
// monthly rows, no ledger entry) counts as reported: recording it again, as
// a cut-over from Storacha's pipeline may, neither counts it twice nor
// bills it, and a new event beside it in the same call is batched as usual.
func TestReadsW3infraRows(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	putItem(t, client, tables.Events, map[string]types.AttributeValue{
		"pk": s("did:key:z6Mkold#bafkreiold"), "sk": s("2025-03-01T00:00:00.000Z#bafyreiold"),
		"space": s("did:key:z6Mkold"), "customer": s("did:mailto:example.com:bob"), "resource": s("bafkreiold"),
		"servedAt": s("2025-03-01T00:00:00.000Z"), "bytes": n("77"), "cause": s("bafyreiold"),
	})
	putItem(t, client, tables.Monthly, map[string]types.AttributeValue{
		"pk": s("customer#did:mailto:example.com:bob"), "sk": s("2025-03#did:key:z6Mkold"),
		"space": s("did:key:z6Mkold"), "month": s("2025-03"), "bytes": n("77"), "eventCount": n("1"),
	})
	ev := billing.Event{Space: "did:key:z6Mkold", Customer: "did:mailto:example.com:bob", Resource: "bafkreiold",
		Bytes: 77, ServedAt: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Cause: "bafyreiold"}
	fresh := ev
	fresh.Cause, fresh.Bytes = "bafyreinew", 3
	for try := range 2 {
		es, bs, err := l.Record(ctx, []billing.Event{ev, fresh}, minute)
		if err != nil {
			t.Fatal(err)
		}
		if e := es[0]; e.State != billing.Reported || e.Bytes != 77 || e.Batch != ev.Cause {
			t.Fatalf("try %d: Record of w3infra's event = %+v; want the reported row, a batch of one", try+1, e)
		}
		if want := 1 - try; len(bs) != want || (want == 1 && (bs[0].ID != fresh.Cause || bs[0].Events != 1)) {
			t.Fatalf("try %d: batches %+v; want %d, of the new event alone", try+1, bs, want)
		}
	}
	if b, err := l.Batch(ctx, ev.Cause); err != nil || b.State != billing.Reported || b.Events != 1 || b.Bytes != 77 {
		t.Fatalf("Batch of the adopted event = %+v, %v; want a reported batch of one", b, err)
	}
	// A customer's totals are read by key, w3infra's included.
	usage, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:bob"})
	if err != nil || len(usage) != 1 || usage[0].Bytes != 80 || usage[0].Events != 2 {
		t.Fatalf("Usage = %+v, %v; want w3infra's row and the new event", usage, err)
	}
	counts, err := l.Count(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:bob"})
	if err != nil || counts[billing.Reported] != 1 || counts[billing.Pending] != 1 {
		t.Fatalf("Count = %v, %v; want 1 reported, 1 pending", counts, err)
	}
}

// TestRecordIsAtomic: when the monthly update cannot happen, neither the
// entries nor the batch are written, so a retry later counts the events
// exactly once.
func TestRecordIsAtomic(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := dynamodb.New(client, dynamodb.Tables{Events: tables.Events, Monthly: awstest.Name("missing"), Ledger: tables.Ledger})
	evs := []billing.Event{
		{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: time.Now(), Cause: "c1"},
		{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 6, ServedAt: time.Now(), Cause: "c2"},
	}
	if _, _, err := l.Record(ctx, evs, minute); err == nil {
		t.Fatal("Record succeeded without a monthly table")
	}
	if _, err := l.Batch(ctx, "c1"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Batch after a failed Record = %v, want ErrNotFound: the batch was written alone", err)
	}
	if es, err := l.Entries(ctx, billing.EntryFilter{}); err != nil || len(es) != 0 {
		t.Fatalf("Entries after a failed Record = %+v, %v; want none", es, err)
	}
	l = newLedger(client, tables)
	if es, bs, err := l.Record(ctx, evs, minute); err != nil || len(bs) != 1 || bs[0].Events != 2 || es[1].Batch != "c1" {
		t.Fatalf("Record once the table exists = %+v, %+v, %v; want one new batch of both", es, bs, err)
	}
}
