package embedded_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/sqlitedb"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/receipts/receiptstest"
)

func event(cause string) billing.Event {
	return billing.Event{Space: "did:key:z6Mkspace", Customer: "did:mailto:example.com:alice",
		Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Bytes: 100,
		ServedAt: time.Unix(1700000000, 0).UTC(), Cause: cause}
}

func open(t *testing.T, dir string) *embedded.DB {
	t.Helper()
	db, err := embedded.Open(context.Background(), dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// causes receives everything queued and returns the events' causes.
func causes(t *testing.T, q billing.Queue) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for {
		msgs, err := q.Receive(context.Background(), 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return seen
		}
		for _, m := range msgs {
			seen[m.Event.Cause]++
		}
	}
}

func TestRecordKeepsEventsAndReceiptsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db := open(t, dir)
	rcpts := []receipt.AnyReceipt{receiptstest.NewReceipt(t), receiptstest.NewReceipt(t)}
	events := []billing.Event{event(rcpts[0].Ran().Link().String()), event(rcpts[1].Ran().Link().String())}
	if err := db.Record(ctx, events, rcpts); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = open(t, dir)
	got := causes(t, db.Queue)
	for _, r := range rcpts {
		cause := r.Ran().Link().String()
		if got[cause] != 1 {
			t.Errorf("event %s queued %d times, want once", cause, got[cause])
		}
		if _, err := db.Receipts.Get(ctx, cause); err != nil {
			t.Errorf("receipt for %s: %v", cause, err)
		}
	}
}

func TestRecordIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db := open(t, dir)

	// Another connection drops the receipt table: the receipt insert fails
	// after the event insert ran, in the same transaction.
	other, err := sqlitedb.Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`DROP TABLE receipt`); err != nil {
		t.Fatal(err)
	}
	other.Close()

	r := receiptstest.NewReceipt(t)
	if err := db.Record(ctx, []billing.Event{event(r.Ran().Link().String())}, []receipt.AnyReceipt{r}); err == nil {
		t.Fatal("Record succeeded without a receipt table")
	}
	if n, err := db.Queue.Depth(ctx); err != nil || n != 0 {
		t.Fatalf("queue depth %d (%v) after a failed Record, want 0: the event must not outlive its receipt", n, err)
	}
}

// An earlier version kept the queue in queue.db and receipts in
// receipts.db: opening the directory brings their rows over, once.
func TestOpenImportsFilesOfEarlierVersions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	oldReceipt := receiptstest.NewReceipt(t)
	archive, err := receipts.Archive(oldReceipt)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []any
	for _, cause := range []string{"bafy-a", "bafy-b", "bafy-c"} {
		body, _ := json.Marshal(event(cause))
		bodies = append(bodies, body)
	}
	// The layouts those files had, which no code writes any more.
	writeOldFile(t, filepath.Join(dir, "queue.db"), `
		CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,
			visible_at INTEGER NOT NULL, receives INTEGER NOT NULL DEFAULT 0, enqueued_at INTEGER NOT NULL);
		CREATE INDEX queue_visible ON queue (visible_at, id);
		CREATE TABLE dead_letter (id INTEGER PRIMARY KEY, body BLOB NOT NULL, receives INTEGER NOT NULL,
			enqueued_at INTEGER NOT NULL, dead_at INTEGER NOT NULL);
		INSERT INTO queue (body, visible_at, enqueued_at) VALUES (?, 0, 0), (?, 0, 0), (?, 0, 0);
		INSERT INTO dead_letter (id, body, receives, enqueued_at, dead_at) VALUES (99, '{}', 10, 0, 0);`, bodies...)
	writeOldFile(t, filepath.Join(dir, "receipts.db"), `
		CREATE TABLE receipt (invocation TEXT PRIMARY KEY, receipt TEXT NOT NULL, archive BLOB NOT NULL);
		CREATE INDEX receipt_by_cid ON receipt (receipt);
		INSERT INTO receipt VALUES (?, ?, ?);`,
		oldReceipt.Ran().Link().String(), oldReceipt.Root().Link().String(), archive)

	db := open(t, dir)
	db.Close()
	// Opening again, as the server and a worker sidecar both do, imports nothing twice.
	db = open(t, dir)

	if got := causes(t, db.Queue); len(got) != 3 || got["bafy-a"] != 1 || got["bafy-b"] != 1 || got["bafy-c"] != 1 {
		t.Fatalf("imported events %v, want bafy-a, bafy-b and bafy-c once each", got)
	}
	if n, err := db.Queue.DeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("%d dead letters (%v), want the 1 imported", n, err)
	}
	if _, err := db.Receipts.Get(ctx, oldReceipt.Root().Link().String()); err != nil {
		t.Fatalf("imported receipt: %v", err)
	}
	for _, name := range []string{"queue.db", "receipts.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still in place after the import (%v)", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".imported")); err != nil {
			t.Errorf("%s.imported: %v", name, err)
		}
	}
}

// writeOldFile writes a file as an earlier egressd did: schema, then rows.
func writeOldFile(t *testing.T, path, statements string, args ...any) {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(statements, args...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
