package dynamodb_test

import (
	"context"
	"fmt"
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

// TestWriteUnitsPerEvent measures what one event costs in DynamoDB capacity,
// tables and indexes together, as DynamoDB reports it
// (ReturnConsumedCapacity): Record then Settle as reported, for events of a
// few customers, the steady state a worker runs in, each event its own
// batch (a sink that does not aggregate) and 50 events of one space a
// batch. The package comment and BENCHMARKS.md quote the figures.
func TestWriteUnitsPerEvent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perBatch  int
		rule      billing.BatchRule
		most      float64 // write units per event
		mostReads float64 // read units per event
	}{
		// Record: the entry and its state index entry (4), the batch item
		// (2), the monthly row and its index (4), the daily item (2), the
		// events row and its two indexes (3); Settle: the batch (1), the entry and its move in
		// the state index (3). Reads: the entry and the events row.
		{"batches of 1", 1, billing.BatchRule{}, 19.5, 2},
		// Record: each entry with its index entry (4) and events row with
		// its indexes (3); once per batch the monthly row and its index (4),
		// the daily item (2) and the 4 KB batch item (8). Settle: each entry (3), the batch (4).
		{"batches of 50", 50, minute, 10.5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			client, tables := newTables(t)
			meter := &capacityMeter{}
			l := newLedger(awsdynamodb.New(client.Options(), func(o *awsdynamodb.Options) {
				o.APIOptions = append(o.APIOptions, meter.register)
			}), tables)
			const events = 200
			var evs []billing.Event
			for i := range events {
				c := i / 50 // four customers, one space each
				evs = append(evs, billing.Event{
					Space: fmt.Sprintf("did:key:z6Mkabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqr%d", c), Customer: fmt.Sprintf("did:mailto:example.com:customer%d", c),
					Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Bytes: 1000, ServedAt: time.Now(),
					Cause: fmt.Sprintf("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s%05d", i),
				})
			}
			// The worker's calls: up to 50 events each.
			for start := 0; start < events; start += 50 {
				_, bs, err := l.Record(ctx, evs[start:start+50], tc.rule)
				if err != nil {
					t.Fatal(err)
				}
				if len(bs) != 50/tc.perBatch {
					t.Fatalf("Record made %d batches of 50 events, want %d", len(bs), 50/tc.perBatch)
				}
				var done []billing.Settlement
				for _, b := range bs {
					done = append(done, billing.Settlement{Batch: b, State: billing.Reported})
				}
				if err := l.Settle(ctx, done...); err != nil {
					t.Fatal(err)
				}
			}
			writes, reads := meter.total()
			writes, reads = writes/events, reads/events
			t.Logf("%s: write units per event %.2f, read units %.2f (Record + Settle, tables and indexes); writes by table: %v",
				tc.name, writes, reads, meter.byTable(events))
			if writes == 0 {
				t.Fatal("DynamoDB reported no consumed capacity")
			}
			if writes > tc.most+0.05 {
				t.Errorf("%.2f write units per event, want at most %.2f", writes, tc.most)
			}
			if reads > tc.mostReads+0.05 {
				t.Errorf("%.2f read units per event, want at most %.2f", reads, tc.mostReads)
			}
		})
	}
}

// capacityMeter asks every call for its consumed capacity and adds it up.
// DynamoDB Local reports a transaction that writes several items of one
// table as if it wrote one of them, so transactions are costed instead by
// DynamoDB's published rules (transactionUnits); single-item writes and
// BatchWriteItem as DynamoDB Local reports them. Local reports no read
// units for items not found, which AWS charges, so reads are costed by
// rule too: a strongly consistent read of an item under 4 KB, found or
// not, is 1 unit.
type capacityMeter struct {
	mu            sync.Mutex
	writes, reads float64
	tables        map[string]float64
}

func (m *capacityMeter) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("meterCapacity",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			const indexes = types.ReturnConsumedCapacityIndexes
			switch p := in.Parameters.(type) {
			case *awsdynamodb.UpdateItemInput:
				p.ReturnConsumedCapacity = indexes
			case *awsdynamodb.PutItemInput:
				p.ReturnConsumedCapacity = indexes
			case *awsdynamodb.BatchWriteItemInput:
				p.ReturnConsumedCapacity = indexes
			}
			out, md, err := next.HandleInitialize(ctx, in)
			var consumed []types.ConsumedCapacity
			switch r := out.Result.(type) {
			case *awsdynamodb.BatchWriteItemOutput:
				consumed = r.ConsumedCapacity
			case *awsdynamodb.UpdateItemOutput:
				consumed = one(r.ConsumedCapacity)
			case *awsdynamodb.PutItemOutput:
				consumed = one(r.ConsumedCapacity)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.tables == nil {
				m.tables = map[string]float64{}
			}
			for _, c := range consumed {
				m.writes += aws.ToFloat64(c.CapacityUnits)
				m.tables[aws.ToString(c.TableName)] += aws.ToFloat64(c.CapacityUnits)
			}
			switch p := in.Parameters.(type) {
			case *awsdynamodb.TransactWriteItemsInput:
				if err == nil {
					for table, units := range transactionUnits(p) {
						m.writes += units
						m.tables[table] += units
					}
				}
			case *awsdynamodb.BatchGetItemInput:
				for _, ka := range p.RequestItems {
					m.reads += float64(len(ka.Keys)) // strongly consistent, under 4 KB
				}
			case *awsdynamodb.GetItemInput:
				m.reads++
			}
			return out, md, err
		}), middleware.After)
}

// transactionUnits costs a transaction's writes by DynamoDB's rules: 2
// units per KB of each item written, and as much again for each global
// secondary index the item is in. A Put's size is its item's; an Update's
// is taken as its key and values (the monthly row and the month item,
// which hold little else). The ledger table's items are in its state
// index when they have a stateKey; every monthly update sets the space its
// index is keyed on.
func transactionUnits(tx *awsdynamodb.TransactWriteItemsInput) map[string]float64 {
	units := map[string]float64{}
	for _, a := range tx.TransactItems {
		var (
			table string
			size  int
			gsis  int
		)
		switch {
		case a.Put != nil:
			table, size = aws.ToString(a.Put.TableName), itemSize(a.Put.Item)
			if _, ok := a.Put.Item["stateKey"]; ok {
				gsis = 1
			}
		case a.Update != nil:
			table = aws.ToString(a.Update.TableName)
			size = itemSize(a.Update.Key) + itemSize(a.Update.ExpressionAttributeValues)
			if strings.HasSuffix(table, "-monthly") {
				gsis = 1
			}
		default:
			continue
		}
		kb := float64((size + 1023) / 1024)
		units[table] += 2 * kb * float64(1+gsis)
	}
	return units
}

// itemSize is an item's size as DynamoDB counts it: names and values.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := len(strings.TrimLeft(strings.TrimPrefix(v.Value, "-"), "0"))
		return (digits+1)/2 + 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 1
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

func (m *capacityMeter) total() (writes, reads float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes, m.reads
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
