package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/dynamodb"
	"github.com/egressd/egressd/billing/ledgertest"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
)

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) billing.Ledger {
		client, tables := newTables(t)
		return newLedger(client, tables)
	})
}

func newLedger(client *awsdynamodb.Client, tables awsconfig.Tables) *dynamodb.Ledger {
	return dynamodb.New(client, dynamodb.Tables{Events: tables.Events, Monthly: tables.Monthly, Ledger: tables.Ledger})
}

// TestRowsAsW3infraWritesThem checks the attribute names and encodings that
// Storacha's reports read (billing/data/egress.js and egress-monthly.js in
// w3infra): their rows hold those and nothing else; egressd's state is in
// its own table.
func TestRowsAsW3infraWritesThem(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	ev := billing.Event{
		Space: "did:key:z6Mkspace", Customer: "did:mailto:example.com:alice", Resource: "bafkreiresource",
		Bytes: 1024, ServedAt: time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC), Cause: "bafyreicause",
	}
	for range 2 {
		if _, _, err := l.Record(ctx, ev); err != nil {
			t.Fatal(err)
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
	monthly := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:alice", "2025-03#did:key:z6Mkspace")
	for name, want := range map[string]string{"space": ev.Space, "month": "2025-03", "bytes": "1024", "eventCount": "1"} {
		if got := monthly[name]; got != want {
			t.Errorf("monthly row %s = %q, want %q (after a duplicate too)", name, got, want)
		}
	}
	if err := l.Mark(ctx, ev, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	entry := getItem(t, client, tables.Ledger, "entry#bafyreicause", "entry")
	if entry["state"] != "reported" || entry["month"] != "2025-03" {
		t.Errorf("ledger entry after Mark = %v, want reported in 2025-03", entry)
	}
	if after := getItem(t, client, tables.Events, "did:key:z6Mkspace#bafkreiresource", "2025-03-04T05:06:07.890Z#bafyreicause"); len(after) != 8 {
		t.Errorf("Mark touched Storacha's events row: %v", after)
	}
}

// TestReadsW3infraRows: an event w3infra recorded itself (its events and
// monthly rows, no ledger entry) counts as reported: recording it again, as
// a cut-over from Storacha's pipeline may, neither counts it twice nor bills it.
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
	stored, isNew, err := l.Record(ctx, ev)
	if err != nil || isNew || stored.State != billing.Reported || stored.Bytes != 77 {
		t.Fatalf("Record of w3infra's event = %+v, new %v, %v; want the reported row, not new", stored, isNew, err)
	}
	// A customer's totals are read by key, w3infra's included. (Usage of
	// every customer lists those egressd recorded in the month.)
	usage, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:bob"})
	if err != nil || len(usage) != 1 || usage[0].Bytes != 77 || usage[0].Events != 1 {
		t.Fatalf("Usage = %+v, %v; want w3infra's row unchanged", usage, err)
	}
	counts, err := l.Count(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:bob"})
	if err != nil || counts[billing.Reported] != 1 {
		t.Fatalf("Count = %v, %v; want 1 reported", counts, err)
	}
	if got := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:bob", "2025-03#did:key:z6Mkold"); got["bytes"] != "77" || got["eventCount"] != "1" {
		t.Fatalf("w3infra's monthly row changed: %v", got)
	}
}

// TestRecordIsAtomic: when the monthly update cannot happen, the event row
// is not written either, so a retry later counts the event exactly once.
func TestRecordIsAtomic(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := dynamodb.New(client, dynamodb.Tables{Events: tables.Events, Monthly: awstest.Name("missing"), Ledger: tables.Ledger})
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: time.Now(), Cause: "c"}
	if _, _, err := l.Record(ctx, ev); err == nil {
		t.Fatal("Record succeeded without a monthly table")
	}
	if err := l.Mark(ctx, ev, billing.Reported, ""); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Mark after a failed Record = %v, want ErrNotFound: the event row was written alone", err)
	}
	l = newLedger(client, tables)
	if _, isNew, err := l.Record(ctx, ev); err != nil || !isNew {
		t.Fatalf("Record once the table exists = new %v, %v; want new", isNew, err)
	}
}

func newTables(t *testing.T) (*awsdynamodb.Client, awsconfig.Tables) {
	t.Helper()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("ledger") + "-")
	if err != nil {
		t.Fatal(err)
	}
	if err := awsinit.Tables(context.Background(), client, tables, awsinit.Options{}); err != nil {
		t.Fatal(err)
	}
	return client, tables
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func putItem(t *testing.T, client *awsdynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := client.PutItem(context.Background(), &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("PutItem(%s): %v", table, err)
	}
}

// getItem reads the row at pk, sk with its string and number attributes as text.
func getItem(t *testing.T, client *awsdynamodb.Client, table, pk, sk string) map[string]string {
	t.Helper()
	out, err := client.GetItem(context.Background(), &awsdynamodb.GetItemInput{
		TableName: aws.String(table),
		Key:       map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)},
	})
	if err != nil {
		t.Fatalf("GetItem(%s): %v", table, err)
	}
	if len(out.Item) == 0 {
		t.Fatalf("no row at %s / %s in %s", pk, sk, table)
	}
	row := map[string]string{}
	for k, v := range out.Item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			row[k] = v.Value
		case *types.AttributeValueMemberN:
			row[k] = v.Value
		}
	}
	return row
}

// BenchmarkRecordAndMark is the worker's ledger work for one event, Record
// then Mark, from concurrent workers spread over 64 customers.
func BenchmarkRecordAndMark(b *testing.B) {
	client := awsconfig.NewDynamoDB(awstest.Config(b))
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("bench") + "-")
	if err != nil {
		b.Fatal(err)
	}
	if err := awsinit.Tables(context.Background(), client, tables, awsinit.Options{}); err != nil {
		b.Fatal(err)
	}
	l := newLedger(client, tables)
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			ev := billing.Event{
				Space: fmt.Sprintf("did:key:s%d", i%64), Customer: fmt.Sprintf("did:mailto:c%d", i%64), Resource: "bafkreires",
				Bytes: 100, ServedAt: time.Now(), Cause: fmt.Sprintf("bench-%d", i),
			}
			if _, _, err := l.Record(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
			if err := l.Mark(context.Background(), ev, billing.Reported, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
