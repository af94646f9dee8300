package awsinit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
)

// TestInitTwice runs Init twice on fresh names, as `egressd aws init` run
// again would, and checks what it made.
func TestInitTwice(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	bucket, err := awsconfig.ParseS3("s3://" + awstest.Name("init") + "/receipts")
	if err != nil {
		t.Fatal(err)
	}
	queue, err := awsconfig.ParseSQS("sqs://" + awstest.Name("init"))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("init") + "-")
	if err != nil {
		t.Fatal(err)
	}
	res := awsinit.Resources{Bucket: &bucket, Queue: &queue, Tables: &tables}
	var second bytes.Buffer
	for i, log := range []io.Writer{io.Discard, &second} {
		opts := awsinit.Options{MaxReceives: 7, Log: slog.New(slog.NewTextHandler(log, nil))}
		if err := awsinit.Init(ctx, cfg, res, opts); err != nil {
			t.Fatalf("Init, run %d: %v", i+1, err)
		}
	}
	// The second run found everything in place.
	for _, want := range []string{"bucket exists", "table exists", "queue ready"} {
		if !strings.Contains(second.String(), want) {
			t.Errorf("second Init did not log %q; log:\n%s", want, second.String())
		}
	}
	if strings.Contains(second.String(), "creating table") || strings.Contains(second.String(), "created bucket") {
		t.Errorf("second Init created something; log:\n%s", second.String())
	}

	if _, err := awsconfig.NewS3(cfg, nil).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket.Name)}); err != nil {
		t.Errorf("bucket %s: %v", bucket.Name, err)
	}

	sqsClient := awsconfig.NewSQS(cfg)
	dlqARN := queueAttr(t, sqsClient, queue.DeadLetter, sqstypes.QueueAttributeNameQueueArn)
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(queueAttr(t, sqsClient, queue.Name, sqstypes.QueueAttributeNameRedrivePolicy)), &policy); err != nil {
		t.Fatalf("redrive policy: %v", err)
	}
	if policy.DeadLetterTargetArn != dlqARN || jsonNumber(policy.MaxReceiveCount) != "7" {
		t.Errorf("redrive policy = %+v, want %s after 7 receives", policy, dlqARN)
	}
	if got := queueAttr(t, sqsClient, queue.Name, sqstypes.QueueAttributeNameMessageRetentionPeriod); got != "1209600" {
		t.Errorf("retention = %s s, want 14 days", got)
	}

	db := awsconfig.NewDynamoDB(cfg)
	for _, tc := range []struct {
		table, hash, sortKey string
		indexes              []string
	}{
		{tables.Consumer, "subscription", "provider", []string{"consumerV2"}},
		{tables.Customer, "customer", "", []string{"account"}},
		{tables.Events, "pk", "sk", []string{"customer", "space", "unsettled"}},
		{tables.Monthly, "pk", "sk", []string{"space-month-index"}},
	} {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tc.table)})
		if err != nil {
			t.Fatalf("table %s: %v", tc.table, err)
		}
		d := out.Table
		if d.TableStatus != dbtypes.TableStatusActive {
			t.Errorf("table %s is %s, want ACTIVE", tc.table, d.TableStatus)
		}
		if d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != dbtypes.BillingModePayPerRequest {
			t.Errorf("table %s is not PAY_PER_REQUEST", tc.table)
		}
		if got := keyNames(d.KeySchema); got != tc.hash+","+tc.sortKey {
			t.Errorf("table %s key = %s, want %s,%s", tc.table, got, tc.hash, tc.sortKey)
		}
		var indexes []string
		for _, g := range d.GlobalSecondaryIndexes {
			indexes = append(indexes, aws.ToString(g.IndexName))
		}
		slices.Sort(indexes)
		if !slices.Equal(indexes, tc.indexes) {
			t.Errorf("table %s indexes = %v, want %v", tc.table, indexes, tc.indexes)
		}
	}
}

// TestQueueExistingWithOtherSettings checks that Init takes over a queue
// made by hand: it keeps it and adds the redrive policy.
func TestQueueExistingWithOtherSettings(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewSQS(awstest.Config(t))
	queue, err := awsconfig.ParseSQS("sqs://" + awstest.Name("byhand") + "?dlq=" + awstest.Name("parked"))
	if err != nil {
		t.Fatal(err)
	}
	made, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(queue.Name),
		Attributes: map[string]string{"MessageRetentionPeriod": "3600", "VisibilityTimeout": "45"},
	})
	if err != nil {
		t.Fatal(err)
	}
	url, err := awsinit.Queue(ctx, client, queue, awsinit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if url != aws.ToString(made.QueueUrl) {
		t.Errorf("Queue returned %s, want the existing queue's %s", url, aws.ToString(made.QueueUrl))
	}
	if got := queueAttr(t, client, queue.Name, sqstypes.QueueAttributeNameRedrivePolicy); !strings.Contains(got, queue.DeadLetter) {
		t.Errorf("redrive policy = %s, want it to name %s", got, queue.DeadLetter)
	}
	if got := queueAttr(t, client, queue.Name, sqstypes.QueueAttributeNameVisibilityTimeout); got != "45" {
		t.Errorf("visibility timeout = %s, want the queue's own 45", got)
	}
}

// TestTableWithOtherLayout checks that Init refuses, with a clear error, a
// table that exists under the name but lacks what egressd reads through.
func TestTableWithOtherLayout(t *testing.T) {
	ctx := context.Background()
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("other") + "-")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(tables.Consumer),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("subscription"), AttributeType: dbtypes.ScalarAttributeTypeS}, {AttributeName: aws.String("provider"), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("subscription"), KeyType: dbtypes.KeyTypeHash}, {AttributeName: aws.String("provider"), KeyType: dbtypes.KeyTypeRange}},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = awsinit.Tables(ctx, db, tables, awsinit.Options{})
	if err == nil || !strings.Contains(err.Error(), "consumerV2") {
		t.Fatalf("Tables over a consumer table without consumerV2 = %v, want an error naming the index", err)
	}
	// The other tables were still created.
	if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tables.Monthly)}); err != nil {
		t.Errorf("table %s: %v", tables.Monthly, err)
	}
}

// TestAddsOwnIndexToStorachaEventsTable checks that Init takes over an
// events table made by w3infra (its two indexes only): it adds egressd's
// sparse unsettled index and keeps the rows.
func TestAddsOwnIndexToStorachaEventsTable(t *testing.T) {
	ctx := context.Background()
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("storacha") + "-")
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return aws.String(s) }
	attr := func(names ...string) []dbtypes.AttributeDefinition {
		var defs []dbtypes.AttributeDefinition
		for _, n := range names {
			defs = append(defs, dbtypes.AttributeDefinition{AttributeName: str(n), AttributeType: dbtypes.ScalarAttributeTypeS})
		}
		return defs
	}
	key := func(hash, sortKey string) []dbtypes.KeySchemaElement {
		return []dbtypes.KeySchemaElement{{AttributeName: str(hash), KeyType: dbtypes.KeyTypeHash}, {AttributeName: str(sortKey), KeyType: dbtypes.KeyTypeRange}}
	}
	_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            str(tables.Events),
		BillingMode:          dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: attr("pk", "sk", "customer", "space", "servedAt"),
		KeySchema:            key("pk", "sk"),
		GlobalSecondaryIndexes: []dbtypes.GlobalSecondaryIndex{
			{IndexName: str("customer"), KeySchema: key("customer", "sk"), Projection: &dbtypes.Projection{ProjectionType: dbtypes.ProjectionTypeInclude, NonKeyAttributes: []string{"space", "resource", "bytes", "cause", "servedAt"}}},
			{IndexName: str("space"), KeySchema: key("space", "servedAt"), Projection: &dbtypes.Projection{ProjectionType: dbtypes.ProjectionTypeInclude, NonKeyAttributes: []string{"resource", "bytes"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	row := map[string]dbtypes.AttributeValue{
		"pk": &dbtypes.AttributeValueMemberS{Value: "did:key:s#bafkrei"}, "sk": &dbtypes.AttributeValueMemberS{Value: "2025-01-31T00:00:00.000Z#bafyrei"},
		"customer": &dbtypes.AttributeValueMemberS{Value: "did:mailto:a"}, "space": &dbtypes.AttributeValueMemberS{Value: "did:key:s"},
		"servedAt": &dbtypes.AttributeValueMemberS{Value: "2025-01-31T00:00:00.000Z"}, "bytes": &dbtypes.AttributeValueMemberN{Value: "5"},
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: str(tables.Events), Item: row}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run finds the index and leaves it
		if err := awsinit.Tables(ctx, db, tables, awsinit.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: str(tables.Events)})
	if err != nil {
		t.Fatal(err)
	}
	var indexes []string
	for _, g := range out.Table.GlobalSecondaryIndexes {
		indexes = append(indexes, aws.ToString(g.IndexName))
	}
	slices.Sort(indexes)
	if want := []string{"customer", "space", "unsettled"}; !slices.Equal(indexes, want) {
		t.Fatalf("indexes = %v, want %v", indexes, want)
	}
	scan, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: str(tables.Events)})
	if err != nil || len(scan.Items) != 1 {
		t.Fatalf("rows after Init = %v, %v; want the one row", scan.Items, err)
	}
}

func queueAttr(t *testing.T, client *sqs.Client, name string, attr sqstypes.QueueAttributeName) string {
	t.Helper()
	ctx := context.Background()
	url, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("queue %s: %v", name, err)
	}
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{attr}})
	if err != nil {
		t.Fatalf("queue %s attributes: %v", name, err)
	}
	return out.Attributes[string(attr)]
}

func keyNames(ks []dbtypes.KeySchemaElement) string {
	var hash, sortKey string
	for _, k := range ks {
		if k.KeyType == dbtypes.KeyTypeHash {
			hash = aws.ToString(k.AttributeName)
		} else {
			sortKey = aws.ToString(k.AttributeName)
		}
	}
	return hash + "," + sortKey
}

// jsonNumber prints a redrive policy's maxReceiveCount, which SQS returns as
// a number or a string.
func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}
