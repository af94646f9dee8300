package sqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/egressd/egressd/billing/queuetest"
	"github.com/egressd/egressd/billing/sqs"
	"github.com/egressd/egressd/internal/awsinit"
)

// TestRequeueDeadLetters: what the redrive policy set aside is listed
// without being disturbed, requeued by ID or all at once, and received
// again from the queue.
func TestRequeueDeadLetters(t *testing.T) {
	ctx := context.Background()
	q, _ := newQueue(t, sqs.Options{Visibility: time.Second}, awsinit.Options{MaxReceives: 1})
	ev := queuetest.Event(0)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Client().SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(q.URL()), MessageBody: aws.String("not an event")}); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Receive(ctx, 10, 5*time.Second); err != nil || len(got) != 1 {
		t.Fatalf("Receive = %v, %v; want the event", got, err)
	}
	// Neither is acknowledged: the next receive after the lease moves both.
	if msgs, err := q.Receive(ctx, 10, 3*time.Second); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive after MaxReceives = %d messages, %v; want none", len(msgs), err)
	}

	dead, err := q.ListDeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("ListDeadLetters = %+v, want 2", dead)
	}
	poisonID := ""
	for _, d := range dead {
		switch {
		case d.Event != nil:
			if *d.Event != ev || d.EnqueuedAt.IsZero() {
				t.Errorf("dead letter %+v, want the event %+v with its send time", d, ev)
			}
			poisonID = d.ID
		case d.Body != "not an event" || d.Problem == "":
			t.Errorf("dead letter %+v, want the unreadable body and its problem", d)
		}
	}
	// Listing released them: listed again at once, all are there.
	if again, err := q.ListDeadLetters(ctx, 10); err != nil || len(again) != 2 {
		t.Fatalf("second ListDeadLetters = %d, %v; want 2 (listing must not hide them)", len(again), err)
	}

	if n, err := q.Requeue(ctx, []string{poisonID}); err != nil || n != 1 {
		t.Fatalf("Requeue(poison) = %d, %v; want 1", n, err)
	}
	if n, err := q.DeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("DeadLetters after requeueing one = %d, %v; want 1", n, err)
	}
	got := receiveAll(t, q, 1)
	if got[0].Event != ev {
		t.Fatalf("after requeue received %+v, want %+v", got[0].Event, ev)
	}
	if err := q.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Requeue(ctx, nil); err != nil || n != 1 {
		t.Fatalf("Requeue(all) = %d, %v; want 1", n, err)
	}
	if n, err := q.DeadLetters(ctx); err != nil || n != 0 {
		t.Fatalf("DeadLetters after requeueing all = %d, %v; want 0", n, err)
	}
	if n, err := q.Depth(ctx); err != nil || n != 1 {
		t.Fatalf("queue depth = %d, %v; want the unreadable message back", n, err)
	}
}
