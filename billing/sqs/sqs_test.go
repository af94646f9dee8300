package sqs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/queuetest"
	"github.com/egressd/egressd/billing/sqs"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, visibility time.Duration) billing.Queue {
		q, _ := newQueue(t, sqs.Options{Visibility: visibility}, awsinit.Options{})
		return q
	})
}

// TestCoalescesConcurrentEnqueues checks that single-event Enqueue calls
// made at the same time share SendMessageBatch calls, ten messages each. The
// linger is long so the test does not depend on scheduling: every batch
// leaves because it is full.
func TestCoalescesConcurrentEnqueues(t *testing.T) {
	q, calls := newQueue(t, sqs.Options{Linger: time.Minute}, awsinit.Options{})
	const callers = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	events := make([]billing.Event, callers)
	errs := make(chan error, callers)
	for i := range events {
		events[i] = queuetest.Event(i)
		wg.Go(func() {
			<-start
			errs <- q.Enqueue(context.Background(), events[i])
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if got := calls.batches(); len(got) != callers/10 {
		t.Fatalf("%d concurrent Enqueue calls made %d SendMessageBatch calls (sizes %v), want %d", callers, len(got), got, callers/10)
	}
	for _, n := range calls.batches() {
		if n != 10 {
			t.Fatalf("SendMessageBatch sizes %v, want 10 each", calls.batches())
		}
	}
	msgs := receiveAll(t, q, callers)
	if len(msgs) != callers {
		t.Fatalf("received %d messages, want %d", len(msgs), callers)
	}
}

// TestSplitsLargeEnqueue checks that one Enqueue of 25 events makes three
// calls of 10, 10 and 5, and that a batch never passes 256 KiB.
func TestSplitsLargeEnqueue(t *testing.T) {
	q, calls := newQueue(t, sqs.Options{}, awsinit.Options{})
	events := make([]billing.Event, 25)
	for i := range events {
		events[i] = queuetest.Event(i)
	}
	if err := q.Enqueue(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	if got := calls.batches(); len(got) != 3 || got[0]+got[1]+got[2] != 25 || max(got[0], got[1], got[2]) != 10 {
		t.Fatalf("SendMessageBatch sizes %v, want 10, 10 and 5", got)
	}

	big := make([]billing.Event, 4)
	for i := range big {
		big[i] = queuetest.Event(i)
		big[i].Resource = strings.Repeat("x", 100<<10)
	}
	before := len(calls.batches())
	if err := q.Enqueue(context.Background(), big...); err != nil {
		t.Fatalf("Enqueue of four 100 KiB events: %v", err)
	}
	if got := calls.batches()[before:]; len(got) != 2 {
		t.Fatalf("four 100 KiB events went in batches %v, want two batches (256 KiB each at most)", got)
	}

	huge := queuetest.Event(0)
	huge.Resource = strings.Repeat("x", 300<<10)
	if err := q.Enqueue(context.Background(), queuetest.Event(1), huge); err == nil {
		t.Fatal("Enqueue of a 300 KiB event succeeded, want an error")
	}
}

// TestReceiveGathersBeyondTen checks that Receive makes several
// ReceiveMessage calls to gather more than SQS's ten per call.
func TestReceiveGathersBeyondTen(t *testing.T) {
	q, _ := newQueue(t, sqs.Options{}, awsinit.Options{})
	events := make([]billing.Event, 25)
	for i := range events {
		events[i] = queuetest.Event(i)
	}
	if err := q.Enqueue(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	// fauxqs hands out every visible message it has, ten at a time; real
	// SQS may hand out fewer per call.
	msgs, err := q.Receive(context.Background(), 25, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 25 {
		t.Fatalf("Receive(25) = %d messages, want 25", len(msgs))
	}
}

// TestPoisonMessagesGoToDeadLetterQueue checks the redrive policy awsinit
// sets up: a message received MaxReceives times without an ack moves to the
// dead-letter queue, where an operator finds it intact.
func TestPoisonMessagesGoToDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	q, _ := newQueue(t, sqs.Options{Visibility: time.Second, Log: slog.New(slog.NewTextHandler(&logs, nil))}, awsinit.Options{MaxReceives: 1})
	ev := queuetest.Event(0)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// A body that is not an event is skipped by Receive and left leased.
	if _, err := q.Client().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(q.URL()), MessageBody: aws.String("not an event")}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Receive(ctx, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Event.Cause != ev.Cause {
		t.Fatalf("Receive = %v, want only the event", got)
	}
	if !strings.Contains(logs.String(), "undecodable") {
		t.Errorf("the undecodable message was not logged; log: %s", logs.String())
	}
	// Neither is acknowledged; the next receive after the lease moves both.
	if msgs, err := q.Receive(ctx, 10, 3*time.Second); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive after MaxReceives = %d messages, %v; want none", len(msgs), err)
	}

	dlq, err := sqs.Open(ctx, q.Client(), q.Name()+"-dlq", sqs.Options{Visibility: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dlq.Close() })
	if n, err := dlq.Depth(ctx); err != nil || n != 2 {
		t.Fatalf("dead-letter queue depth = %d, %v; want 2", n, err)
	}
	if n, err := q.DeadLetters(ctx); err != nil || n != 2 {
		t.Fatalf("DeadLetters = %d, %v; want 2, found through the redrive policy", n, err)
	}
	parked := receiveAll(t, dlq, 1)
	if len(parked) != 1 || parked[0].Event.Cause != ev.Cause || parked[0].Event.Bytes != ev.Bytes {
		t.Fatalf("dead-letter queue holds %+v, want the event %+v", parked, ev)
	}
}

func TestClosedQueueRefusesEvents(t *testing.T) {
	q, _ := newQueue(t, sqs.Options{}, awsinit.Options{})
	if err := q.Enqueue(context.Background(), queuetest.Event(0)); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := q.Enqueue(context.Background(), queuetest.Event(1)); !errors.Is(err, billing.ErrClosed) {
		t.Fatalf("Enqueue after Close = %v, want billing.ErrClosed", err)
	}
}

func TestOpenMissingQueue(t *testing.T) {
	client := awsconfig.NewSQS(awstest.Config(t))
	_, err := sqs.Open(context.Background(), client, awstest.Name("missing"), sqs.Options{})
	if err == nil || !strings.Contains(err.Error(), "aws init") {
		t.Fatalf("Open(missing queue) = %v, want an error that says how to create it", err)
	}
}

// TestDeadLettersWithoutRedrivePolicy: a queue made by hand, without a
// dead-letter queue, is reported as such rather than as having none parked.
func TestDeadLettersWithoutRedrivePolicy(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewSQS(awstest.Config(t))
	name := awstest.Name("nodlq")
	if _, err := client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	q, err := sqs.Open(ctx, client, name, sqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.DeadLetters(ctx); err == nil || !strings.Contains(err.Error(), "aws init") {
		t.Fatalf("DeadLetters without a redrive policy = %v, want an error that says how to set one", err)
	}
}

// testQueue is a Queue with what the tests need to reach around it.
type testQueue struct {
	*sqs.Queue
	client *awssqs.Client
	name   string
}

func (q testQueue) Client() *awssqs.Client { return q.client }
func (q testQueue) Name() string           { return q.name }

// newQueue creates a fresh queue and dead-letter queue with awsinit and
// opens it with a client that records every SendMessageBatch call.
func newQueue(t *testing.T, opts sqs.Options, initOpts awsinit.Options) (testQueue, *callLog) {
	t.Helper()
	ctx := context.Background()
	calls := &callLog{}
	client := awssqs.NewFromConfig(awstest.Config(t), func(o *awssqs.Options) {
		o.APIOptions = append(o.APIOptions, calls.record)
	})
	name := awstest.Name("events")
	names, err := awsconfig.ParseSQS("sqs://" + name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := awsinit.Queue(ctx, client, names, initOpts); err != nil {
		t.Fatal(err)
	}
	q, err := sqs.Open(ctx, client, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return testQueue{Queue: q, client: client, name: name}, calls
}

// callLog records the size of every SendMessageBatch call.
type callLog struct {
	mu    sync.Mutex
	sizes []int
}

func (c *callLog) record(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("egressd-test-calls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if batch, ok := in.Parameters.(*awssqs.SendMessageBatchInput); ok && awsmiddleware.GetOperationName(ctx) == "SendMessageBatch" {
				c.mu.Lock()
				c.sizes = append(c.sizes, len(batch.Entries))
				c.mu.Unlock()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

func (c *callLog) batches() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

// receiveAll receives until n messages arrived or a Receive comes back empty.
func receiveAll(t *testing.T, q billing.Queue, n int) []billing.Message {
	t.Helper()
	var msgs []billing.Message
	for len(msgs) < n {
		got, err := q.Receive(context.Background(), n-len(msgs), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		msgs = append(msgs, got...)
	}
	return msgs
}

// BenchmarkEnqueueParallel measures single-event Enqueue calls from many
// goroutines, as the server makes them, and reports the events per call.
func BenchmarkEnqueueParallel(b *testing.B) {
	q, calls := newQueueB(b)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := q.Enqueue(context.Background(), queuetest.Event(i)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	if n := len(calls.batches()); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "events/call")
	}
}

func newQueueB(b *testing.B) (*sqs.Queue, *callLog) {
	ctx := context.Background()
	calls := &callLog{}
	client := awssqs.NewFromConfig(awstest.Config(b), func(o *awssqs.Options) {
		o.APIOptions = append(o.APIOptions, calls.record)
	})
	names, err := awsconfig.ParseSQS("sqs://" + awstest.Name("bench"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := awsinit.Queue(ctx, client, names, awsinit.Options{}); err != nil {
		b.Fatal(err)
	}
	q, err := sqs.Open(ctx, client, names.Name, sqs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q, calls
}
