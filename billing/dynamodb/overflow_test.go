package dynamodb_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
)

// TestTotalPastInt64 reads a monthly row whose bytes another writer let pass
// 2^63-1 (DynamoDB's numbers have 38 digits, so ADD never wraps): reading it
// names the row instead of returning a wrapped number, other customers'
// totals still read, and a new event for that row is refused, not added.
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
	if _, _, err := l.Record(ctx, small); err != nil {
		t.Fatal(err)
	}

	_, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:big"})
	if err == nil || !strings.Contains(err.Error(), "did:mailto:example.com:big") || !strings.Contains(err.Error(), "did:key:z6Mkbig") || !strings.Contains(err.Error(), past) {
		t.Fatalf("Usage over a total past int64 = %v; want an error naming the row and its value", err)
	}
	if u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: small.Customer}); err != nil || len(u) != 1 || u[0].Bytes != 5 {
		t.Fatalf("Usage of another customer = %+v, %v; want its 5 bytes", u, err)
	}

	ev := billing.Event{Space: "did:key:z6Mkbig", Customer: "did:mailto:example.com:big", Resource: "r", Bytes: 1,
		ServedAt: time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC), Cause: "bafy-one-more"}
	e, isNew, err := l.Record(ctx, ev)
	if err != nil || !isNew || e.State != billing.Failed || !strings.HasPrefix(e.Reason, billing.ReasonTotalOverflow) || !strings.Contains(e.Reason, past) {
		t.Fatalf("Record into the row past int64 = %+v, new %v, %v; want failed with the overflow reason", e, isNew, err)
	}
	row := getItem(t, client, tables.Monthly, "customer#did:mailto:example.com:big", "2025-03#did:key:z6Mkbig")
	if row["bytes"] != past || row["eventCount"] != "3" {
		t.Fatalf("monthly row after a refused event = %v; want bytes %s unchanged and eventCount 3", row, past)
	}
}

// TestRecordWriteCost checks the overflow guard costs nothing on the common
// path: one TransactWriteItems per new event. Only a refused event takes a
// second transaction.
func TestRecordWriteCost(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	calls := &callCounter{}
	counted := awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) {
		o.APIOptions = append(o.APIOptions, calls.register)
	})
	l := newLedger(counted, tables)
	at := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: math.MaxInt64 - 1, ServedAt: at, Cause: "c1"}
	if _, isNew, err := l.Record(ctx, ev); err != nil || !isNew {
		t.Fatalf("Record = new %v, %v", isNew, err)
	}
	// A read of Storacha's events row (did w3infra record it?), the
	// transaction, then that row. The first event of a customer and space
	// in a month also registers them in the month (a third item).
	if got := calls.take(); got != "GetItem TransactWriteItems/3 PutItem" {
		t.Fatalf("a new event took calls %q, want GetItem TransactWriteItems/3 PutItem", got)
	}
	ev.Cause, ev.Bytes = "c2", 2
	if e, isNew, err := l.Record(ctx, ev); err != nil || !isNew || e.State != billing.Failed {
		t.Fatalf("Record past the total = %+v, new %v, %v; want failed", e, isNew, err)
	}
	if got := calls.take(); got != "GetItem TransactWriteItems/2 TransactWriteItems/2" {
		t.Fatalf("a refused event took calls %q, want GetItem, a transaction of 2 items, then the refusal's of 2", got)
	}
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
