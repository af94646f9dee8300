package sqlite

import (
	"context"
	"testing"

	"github.com/egressd/egressd/billing"
)

func TestUnreadableMessageIsDeadLetteredNotStalling(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	if _, err := q.db.Exec(`INSERT INTO queue (body, visible_at, enqueued_at) VALUES ('not json', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, billing.Event{Space: "did:key:z6Mk", Cause: "bafy-good", Bytes: 1}); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 10, 0)
	if err != nil {
		t.Fatalf("an unreadable message stalled the queue: %v", err)
	}
	if len(msgs) != 1 || msgs[0].Event.Cause != "bafy-good" {
		t.Fatalf("received %+v, want the one good event", msgs)
	}
	if n, _ := q.DeadLetters(ctx); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}
