package awsinit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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
// again would, and checks what it made: the bucket, the queue with its
// redrive policy, and the tables (see tables_test.go for their layout).
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
	deleteTablesAtEnd(t, awsconfig.NewDynamoDB(cfg), tables)
	res := awsinit.Resources{Bucket: &bucket, Queue: &queue, Tables: &tables}
	var second bytes.Buffer
	for i, log := range []io.Writer{io.Discard, &second} {
		opts := awsinit.Options{MaxReceives: 7, Log: slog.New(slog.NewTextHandler(log, nil))}
		report, err := awsinit.Init(ctx, cfg, res, opts)
		if err != nil {
			t.Fatalf("Init, run %d: %v", i+1, err)
		}
		if len(report.Tables) != 7 {
			t.Fatalf("Init, run %d, reported %d tables, want 7: %+v", i+1, len(report.Tables), report.Tables)
		}
		for _, r := range report.Tables {
			if r.Created != (i == 0) {
				t.Errorf("Init, run %d: table %s (%s) created = %v", i+1, r.Name, r.Role, r.Created)
			}
		}
	}
	// The second run found everything in place.
	for _, want := range []string{"bucket exists", "table checked", "queue ready"} {
		if !strings.Contains(second.String(), want) {
			t.Errorf("second Init did not log %q; log:\n%s", want, second.String())
		}
	}
	if strings.Contains(second.String(), "table created") || strings.Contains(second.String(), "created bucket") {
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

// jsonNumber prints a redrive policy's maxReceiveCount, which SQS returns as
// a number or a string.
func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// deleteTablesAtEnd deletes the tables of t that exist when the test ends.
func deleteTablesAtEnd(t *testing.T, client *dynamodb.Client, tables awsconfig.Tables) {
	t.Cleanup(func() {
		for _, name := range []string{tables.Consumer, tables.Subscription, tables.Customer, awsinit.RevocationTable(tables), tables.Events, tables.Monthly, tables.Ledger} {
			_, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
			var missing *dbtypes.ResourceNotFoundException
			if err != nil && !errors.As(err, &missing) {
				t.Errorf("deleting table %s: %v", name, err)
			}
		}
	})
}
