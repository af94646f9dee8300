package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/internal/sqlitedb"
)

// openTestQueue opens the queue of a new data directory's journal.db with
// opts the embedded backend does not set (MaxReceives), and the file itself,
// to write and read past the queue.
func openTestQueue(t *testing.T, opts sqlite.QueueOptions) (*sqlite.Queue, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	openData(t, dir).Close() // creates and migrates the files
	db, err := sqlitedb.Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	writes := sqlitedb.NewCommitter(db)
	t.Cleanup(func() { writes.Close(); db.Close() })
	q, err := sqlite.NewQueue(db, writes, opts)
	if err != nil {
		t.Fatal(err)
	}
	return q, db
}

func TestUnreadableMessageIsDeadLetteredNotStalling(t *testing.T) {
	q, db := openTestQueue(t, sqlite.QueueOptions{})
	ctx := context.Background()
	if _, err := db.Exec(`INSERT INTO queue (body, visible_at, enqueued_at) VALUES ('not json', 0, 0)`); err != nil {
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

func TestMessageDeliveredTooOftenIsDeadLettered(t *testing.T) {
	q, db := openTestQueue(t, sqlite.QueueOptions{Visibility: time.Millisecond, MaxReceives: 2})
	ctx := context.Background()
	if err := q.Enqueue(ctx, billing.Event{Space: "did:key:z6Mk", Cause: "bafy-poison", Bytes: 1}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		msgs, err := q.Receive(ctx, 10, time.Second)
		if err != nil || len(msgs) != 1 || msgs[0].Receives != want {
			t.Fatalf("delivery %d: %+v, %v", want, msgs, err)
		}
		time.Sleep(5 * time.Millisecond) // let the lease run out without an ack
	}
	msgs, err := q.Receive(ctx, 10, 0)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("third delivery of a poison message: %+v, %v", msgs, err)
	}
	var receives int
	if err := db.QueryRow(`SELECT receives FROM dead_letter`).Scan(&receives); err != nil || receives != 2 {
		t.Fatalf("dead letter records %d deliveries (%v), want 2", receives, err)
	}
	if n, _ := q.Depth(ctx); n != 0 {
		t.Fatalf("queue depth %d, want 0", n)
	}
}
