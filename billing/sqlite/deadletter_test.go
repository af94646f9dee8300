package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
)

// TestRequeueDeadLetters: an operator lists what was set aside (a poison
// event and an unreadable row), requeues one by ID, then the rest, and a
// worker receives the event afresh.
func TestRequeueDeadLetters(t *testing.T) {
	q, db := openTestQueue(t, sqlite.QueueOptions{Visibility: time.Millisecond, MaxReceives: 1})
	ctx := context.Background()
	ev := billing.Event{Space: "did:key:z6Mk", Customer: "did:mailto:example.com:a", Cause: "bafy-poison", Bytes: 7, ServedAt: time.Unix(1700000000, 0).UTC()}
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO queue (body, visible_at, enqueued_at) VALUES ('not json', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if msgs, err := q.Receive(ctx, 10, time.Second); err != nil || len(msgs) != 1 {
		t.Fatalf("first delivery: %+v, %v", msgs, err)
	}
	time.Sleep(5 * time.Millisecond)
	if msgs, err := q.Receive(ctx, 10, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("second delivery of a poison message: %+v, %v", msgs, err)
	}

	dead, err := q.ListDeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 {
		t.Fatalf("ListDeadLetters = %+v, want 2", dead)
	}
	var poison, unreadable billing.DeadLetter
	for _, d := range dead {
		if d.Event != nil {
			poison = d
		} else {
			unreadable = d
		}
	}
	if poison.Event == nil || *poison.Event != ev || poison.Receives != 1 || poison.DeadAt.IsZero() {
		t.Errorf("poison dead letter = %+v, want the event with 1 delivery", poison)
	}
	if unreadable.Body != "not json" || unreadable.Problem == "" {
		t.Errorf("unreadable dead letter = %+v, want its body and the problem", unreadable)
	}
	if n, err := q.DeadLetters(ctx); err != nil || n != 2 {
		t.Fatalf("listing changed the dead letters: %d, %v", n, err)
	}

	if _, err := q.Requeue(ctx, []string{"x"}); err == nil {
		t.Error("Requeue of a malformed ID succeeded")
	}
	if n, err := q.Requeue(ctx, []string{poison.ID, "999999"}); err != nil || n != 1 {
		t.Fatalf("Requeue(poison, unknown) = %d, %v; want 1", n, err)
	}
	msgs, err := q.Receive(ctx, 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Event != ev || msgs[0].Receives != 1 {
		t.Fatalf("after requeue received %+v, %v; want the event, delivered once", msgs, err)
	}
	if err := q.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if n, err := q.DeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("dead letters after requeueing one = %d, %v; want 1", n, err)
	}
	if n, err := q.Requeue(ctx, nil); err != nil || n != 1 {
		t.Fatalf("Requeue(all) = %d, %v; want 1", n, err)
	}
	if n, _ := q.DeadLetters(ctx); n != 0 {
		t.Fatalf("dead letters after requeueing all = %d", n)
	}
	if n, _ := q.Depth(ctx); n != 1 {
		t.Fatalf("queue depth = %d, want the unreadable row back", n)
	}
}

func TestDeadLetterGauge(t *testing.T) {
	q, db := openTestQueue(t, sqlite.QueueOptions{})
	if _, err := db.Exec(`INSERT INTO dead_letter (id, body, receives, enqueued_at, dead_at) VALUES (1, 'x', 10, 0, 0), (2, 'y', 10, 0, 0)`); err != nil {
		t.Fatal(err)
	}
	g := billing.NewDeadLetterGauge(q)
	if g == nil {
		t.Fatal("no gauge for the embedded queue")
	}
	ch := make(chan prometheus.Metric, 1)
	g.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetGauge().GetValue(); got != 2 {
		t.Fatalf("egressd_queue_dead_letters = %v, want 2", got)
	}
}
