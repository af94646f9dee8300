package dynamodb_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
)

// TestTotalPastInt64 reads a monthly row whose bytes another writer let pass
// 2^63-1 (DynamoDB's numbers have 38 digits, so ADD never wraps): reading it
// names the row instead of returning a wrapped number, other customers'
// totals still read, and new events for that row are refused, not added,
// while an event of another space in the same batch is counted.
func TestTotalPastInt64(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	l := newLedger(client, tables)
	const past = "18446744073709551614" // 2^64-2
	putItem(t, client, tables.Monthly, map[string]types.AttributeValue{
		"pk": s("customer#did:mailto:example.com:big"), "sk": s("2025-03#did:key:z6Mkbig"),
		"space": s("did:key:z6Mkbig"), "month": s("2025-03"), "bytes": n(past), "eventCount": n("2"),
	})
	small := billing.Event{Space: "did:key:z6Mksmall", Customer: "did:mailto:example.com:small", Resource: "r", Bytes: 5,
		ServedAt: time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC), Cause: "bafy-small"}
	if _, _, err := l.Record(ctx, []billing.Event{small}, minute); err != nil {
		t.Fatal(err)
	}

	_, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:big"})
	if err == nil || !strings.Contains(err.Error(), "did:mailto:example.com:big") || !strings.Contains(err.Error(), "did:key:z6Mkbig") || !strings.Contains(err.Error(), past) {
		t.Fatalf("Usage over a total past int64 = %v; want an error naming the row and its value", err)
	}
	if u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: small.Customer}); err != nil || len(u) != 1 || u[0].Bytes != 5 {
		t.Fatalf("Usage of another customer = %+v, %v; want its 5 bytes", u, err)
	}

	at := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	evs := []billing.Event{
		{Space: "did:key:z6Mkbig", Customer: "did:mailto:example.com:big", Resource: "r", Bytes: 1, ServedAt: at, Cause: "bafy-one-more"},
		{Space: "did:key:z6Mkfine", Customer: "did:mailto:example.com:big", Resource: "r", Bytes: 4, ServedAt: at, Cause: "bafy-fine"},
		{Space: "did:key:z6Mkbig", Customer: "did:mailto:example.com:big", Resource: "r", Bytes: 2, ServedAt: at, Cause: "bafy-two-more"},
	}
	es, bs, err := l.Record(ctx, evs, minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []billing.Entry{es[0], es[2]} {
		if e.State != billing.Failed || e.Batch != e.Cause || !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) || !strings.Contains(e.Reason, past) {
			t.Fatalf("Record into the row past int64 = %+v; want failed alone with the overflow reason", e)
		}
	}
	if len(bs) != 1 || bs[0].ID != "bafy-fine" || bs[0].Bytes != 4 || es[1].State != billing.Pending {
		t.Fatalf("batches %+v, entry %+v; want the other space's event pending in a batch of its own", bs, es[1])
	}
	row := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:big", "2025-03#did:key:z6Mkbig")
	if row["bytes"] != past || row["eventCount"] != "4" {
		t.Fatalf("monthly row after two refused events = %v; want bytes %s unchanged and eventCount 4", row, past)
	}
}

// TestRecordCalls checks what Record asks of DynamoDB: one read of the
// entries and Storacha's rows together, one transaction per batch, the
// rows in batches of 25. The overflow guard costs nothing on the common
// path; only a batch a total refuses takes more.
func TestRecordCalls(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	calls := &callCounter{}
	counted := awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) {
		o.APIOptions = append(o.APIOptions, calls.register)
	})
	l := newLedger(counted, tables)
	at := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	event := func(cause string, bytes int64) billing.Event {
		return billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: bytes, ServedAt: at, Cause: cause}
	}
	for _, tc := range []struct {
		name string
		evs  []billing.Event
		want string
	}{
		// The entry, the batch, the monthly and daily ADDs, and the month
		// item the first time this customer and space are counted in the month.
		{"a new event", []billing.Event{event("c1", 1)}, "BatchGetItem TransactWriteItems/5 BatchWriteItem"},
		{"the same again", []billing.Event{event("c1", 1)}, "BatchGetItem BatchWriteItem"},
		// 50 events of one space: 50 entries, the batch, one monthly and one daily ADD.
		{"a batch of 50", fifty(event), "BatchGetItem TransactWriteItems/53 BatchWriteItem BatchWriteItem"},
		// 100 events: two lookups; a batch holds 96 of one space.
		{"a batch of 100", hundred(event), "BatchGetItem BatchGetItem TransactWriteItems/99 TransactWriteItems/7 BatchWriteItem BatchWriteItem BatchWriteItem BatchWriteItem"},
		{"near the total", []billing.Event{event("big", math.MaxInt64-400)}, "BatchGetItem TransactWriteItems/4 BatchWriteItem"},
		// Past the total: the batch is cancelled, the totals read; the
		// events the total takes are a batch, the other is tried alone,
		// then refused.
		{"past the total", []billing.Event{event("a", 100), event("b", 300), event("c", 100)},
			"BatchGetItem TransactWriteItems/6 BatchGetItem TransactWriteItems/5 TransactWriteItems/4 TransactWriteItems/4 BatchWriteItem"},
	} {
		_, _, err := l.Record(ctx, tc.evs, minute)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := calls.take(); got != tc.want {
			t.Errorf("%s took calls\n%q, want\n%q", tc.name, got, tc.want)
		}
	}
}

func fifty(event func(string, int64) billing.Event) []billing.Event {
	var evs []billing.Event
	for i := range 50 {
		evs = append(evs, event(fmt.Sprintf("f%02d", i), 1))
	}
	return evs
}

func hundred(event func(string, int64) billing.Event) []billing.Event {
	var evs []billing.Event
	for i := range 100 {
		evs = append(evs, event(fmt.Sprintf("h%03d", i), 1))
	}
	return evs
}

// callCounter notes each DynamoDB call as operation/transaction items.
type callCounter struct {
	mu    sync.Mutex
	calls []string
}

func (c *callCounter) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("countCalls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			call := middleware.GetOperationName(ctx)
			if tx, ok := in.Parameters.(*awsdynamodb.TransactWriteItemsInput); ok {
				call += "/" + strconv.Itoa(len(tx.TransactItems))
			}
			c.mu.Lock()
			c.calls = append(c.calls, call)
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (c *callCounter) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.Join(c.calls, " ")
	c.calls = nil
	return s
}

// transactions counts the actions on each table in the transactions it
// sees, by kind (Put, Update).
type transactions struct {
	mu      sync.Mutex
	actions map[string]int
}

func (tx *transactions) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("countActions",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(*awsdynamodb.TransactWriteItemsInput); ok {
				tx.mu.Lock()
				if tx.actions == nil {
					tx.actions = map[string]int{}
				}
				for _, a := range p.TransactItems {
					switch {
					case a.Put != nil:
						tx.actions["Put "+aws.ToString(a.Put.TableName)]++
					case a.Update != nil:
						tx.actions["Update "+aws.ToString(a.Update.TableName)]++
					}
				}
				tx.mu.Unlock()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}
