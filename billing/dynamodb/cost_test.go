package dynamodb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
)

// TestWriteUnitsPerEvent measures what one event costs in DynamoDB write
// units, tables and indexes together, as DynamoDB reports it
// (ReturnConsumedCapacity): Record and Mark of events for a few customers,
// the steady state a worker runs in. BENCHMARKS.md quotes the figure.
func TestWriteUnitsPerEvent(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	meter := &capacityMeter{}
	metered := awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) {
		o.APIOptions = append(o.APIOptions, meter.register)
	})
	l := newLedger(metered, tables)
	const events = 200
	for i := range events {
		ev := billing.Event{
			Space: fmt.Sprintf("did:key:z6Mkspace%d", i%4), Customer: fmt.Sprintf("did:mailto:example.com:c%d", i%4),
			Resource: "bafkreiresource", Bytes: 1000, ServedAt: time.Now(), Cause: fmt.Sprintf("bafyreicause%d", i),
		}
		if _, _, err := l.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := l.Mark(ctx, ev, billing.Reported, ""); err != nil {
			t.Fatal(err)
		}
	}
	perEvent := meter.total() / events
	t.Logf("write units per event (Record + Mark, tables and indexes): %.2f; by table: %v", perEvent, meter.byTable(events))
	if perEvent == 0 {
		t.Fatal("DynamoDB reported no consumed capacity")
	}
	// Record: the entry and its index entry in a transaction (4), the
	// monthly row and its index in the same transaction (4), the events
	// row and its two indexes (3); Mark: the entry and its index move (3).
	// 14 in all, as when egressd kept its state in Storacha's events table;
	// Storacha's own pipeline writes 5 (no dedup, no state).
	if perEvent > 14.5 {
		t.Fatalf("%.2f write units per event, want at most 14", perEvent)
	}
}

// capacityMeter asks every write for its consumed capacity and adds it up.
type capacityMeter struct {
	mu     sync.Mutex
	units  float64
	tables map[string]float64
}

func (m *capacityMeter) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("meterCapacity",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			switch p := in.Parameters.(type) {
			case *awsdynamodb.TransactWriteItemsInput:
				p.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
			case *awsdynamodb.UpdateItemInput:
				p.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
			case *awsdynamodb.PutItemInput:
				p.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
			}
			out, md, err := next.HandleInitialize(ctx, in)
			var consumed []types.ConsumedCapacity
			switch r := out.Result.(type) {
			case *awsdynamodb.TransactWriteItemsOutput:
				consumed = r.ConsumedCapacity
			case *awsdynamodb.UpdateItemOutput:
				if r.ConsumedCapacity != nil {
					consumed = append(consumed, *r.ConsumedCapacity)
				}
			case *awsdynamodb.PutItemOutput:
				if r.ConsumedCapacity != nil {
					consumed = append(consumed, *r.ConsumedCapacity)
				}
			}
			m.mu.Lock()
			if m.tables == nil {
				m.tables = map[string]float64{}
			}
			for _, c := range consumed {
				m.units += aws.ToFloat64(c.CapacityUnits)
				m.tables[aws.ToString(c.TableName)] += aws.ToFloat64(c.CapacityUnits)
			}
			m.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

func (m *capacityMeter) total() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.units
}

func (m *capacityMeter) byTable(events int) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, u := range m.tables {
		out[name] = fmt.Sprintf("%.2f", u/float64(events))
	}
	return out
}
