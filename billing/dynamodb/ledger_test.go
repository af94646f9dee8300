package dynamodb_test

import (
	"context"
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

// TestRepair: settling a batch again mends members a settle stopped half
// way through left behind. The desync writes a member's state as a stop
// between the batch's update and the member's would leave it.
func TestRepair(t *testing.T) {
	clients := map[billing.Ledger]*awsdynamodb.Client{}
	tableOf := map[billing.Ledger]string{}
	ledgertest.RunRepair(t, func(t *testing.T) billing.Ledger {
		client, tables := newTables(t)
		l := newLedger(client, tables)
		clients[l], tableOf[l] = client, tables.Ledger
		return l
	}, func(t *testing.T, l billing.Ledger, cause string, state billing.State, reason string) {
		desync(t, clients[l], tableOf[l], cause, state, reason)
	})
}

// desync sets the state and reason of the entry of cause (and its place in
// the state index) behind the ledger's back.
func desync(t *testing.T, client *awsdynamodb.Client, table, cause string, state billing.State, reason string) {
	t.Helper()
	_, err := client.UpdateItem(context.Background(), &awsdynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{"pk": s("entry#" + cause), "sk": s("entry")},
		UpdateExpression:          aws.String("SET #state = :state, #reason = :reason, stateKey = :stateKey"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#state": "state", "#reason": "reason"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":state": s(string(state)), ":reason": s(reason), ":stateKey": s(string(state) + "#0")},
	})
	if err != nil {
		t.Fatalf("desyncing %s: %v", cause, err)
	}
}

func newLedger(client *awsdynamodb.Client, tables awsconfig.Tables) *dynamodb.Ledger {
	return dynamodb.New(client, dynamodb.Tables{Events: tables.Events, Monthly: tables.Monthly, Ledger: tables.Ledger})
}

func newTables(t testing.TB) (*awsdynamodb.Client, awsconfig.Tables) {
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

// getItem reads the row at pk, sk with its string and number attributes as
// text; nil when there is none.
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
		return nil
	}
	row := map[string]string{}
	for k, v := range out.Item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			row[k] = v.Value
		case *types.AttributeValueMemberN:
			row[k] = v.Value
		case *types.AttributeValueMemberL:
			row[k] = fmt.Sprintf("list of %d", len(v.Value))
		}
	}
	return row
}

// BenchmarkRecordAndSettle is the worker's ledger work, Record then Settle,
// from concurrent workers spread over 64 customers, 50 events a call batched
// by the minute.
func BenchmarkRecordAndSettle(b *testing.B) {
	client, tables := newTables(b)
	l := newLedger(client, tables)
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			var evs []billing.Event
			for j := range 50 {
				evs = append(evs, billing.Event{
					Space: fmt.Sprintf("did:key:s%d", i%64), Customer: fmt.Sprintf("did:mailto:c%d", i%64), Resource: "bafkreires",
					Bytes: 100, ServedAt: time.Now(), Cause: fmt.Sprintf("bench-%d-%d", i, j),
				})
			}
			_, batches, err := l.Record(context.Background(), evs, billing.BatchRule{Window: time.Minute})
			if err != nil {
				b.Error(err)
				return
			}
			var done []billing.Settlement
			for _, batch := range batches {
				done = append(done, billing.Settlement{Batch: batch, State: billing.Reported})
			}
			if err := l.Settle(context.Background(), done...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(50*b.N)/b.Elapsed().Seconds(), "events/s")
}
