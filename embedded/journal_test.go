package embedded_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/sqlitedb"
	"github.com/egressd/egressd/receipts/receiptstest"
	receiptsqlite "github.com/egressd/egressd/receipts/sqlite"
)

func event(cause string) billing.Event {
	return billing.Event{Space: "did:key:z6Mkspace", Customer: "did:mailto:example.com:alice",
		Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Bytes: 100,
		ServedAt: time.Unix(1700000000, 0).UTC(), Cause: cause}
}

func open(t *testing.T, dir string) *embedded.Journal {
	t.Helper()
	j, err := embedded.Open(context.Background(), dir, billingsqlite.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
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
	j := open(t, dir)
	rcpts := []receipt.AnyReceipt{receiptstest.NewReceipt(t), receiptstest.NewReceipt(t)}
	events := []billing.Event{event(rcpts[0].Ran().Link().String()), event(rcpts[1].Ran().Link().String())}
	if err := j.Record(ctx, events, rcpts); err != nil {
		t.Fatal(err)
	}
	j.Close()

	j = open(t, dir)
	defer j.Close()
	got := causes(t, j.Queue)
	for _, r := range rcpts {
		cause := r.Ran().Link().String()
		if got[cause] != 1 {
			t.Errorf("event %s queued %d times, want once", cause, got[cause])
		}
		if _, err := j.Receipts.Get(ctx, cause); err != nil {
			t.Errorf("receipt for %s: %v", cause, err)
		}
	}
}

func TestRecordIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := open(t, dir)
	defer j.Close()

	// Another connection drops the receipt table: the receipt insert fails
	// after the event insert ran, in the same transaction.
	other, err := sqlitedb.Open(filepath.Join(dir, embedded.File), `DROP TABLE receipt`)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()

	r := receiptstest.NewReceipt(t)
	if err := j.Record(ctx, []billing.Event{event(r.Ran().Link().String())}, []receipt.AnyReceipt{r}); err == nil {
		t.Fatal("Record succeeded without a receipt table")
	}
	if n, err := j.Queue.Depth(ctx); err != nil || n != 0 {
		t.Fatalf("queue depth %d (%v) after a failed Record, want 0: the event must not outlive its receipt", n, err)
	}
}

// An earlier version kept the queue in queue.db and receipts in
// receipts.db: opening the journal brings their rows over, once.
func TestOpenImportsFilesOfEarlierVersions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	oldReceipt := receiptstest.NewReceipt(t)
	writeOldFile(t, filepath.Join(dir, "queue.db"), func(db *sql.DB, writes *sqlitedb.Committer) {
		q, err := billingsqlite.NewQueue(db, writes, billingsqlite.QueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(ctx, event("bafy-a"), event("bafy-b"), event("bafy-c")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO dead_letter (id, body, receives, enqueued_at, dead_at) VALUES (99, '{}', 10, 0, 0)`); err != nil {
			t.Fatal(err)
		}
	})
	writeOldFile(t, filepath.Join(dir, "receipts.db"), func(db *sql.DB, writes *sqlitedb.Committer) {
		rs, err := receiptsqlite.New(db, writes)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.Put(ctx, oldReceipt); err != nil {
			t.Fatal(err)
		}
	})

	j := open(t, dir)
	j.Close()
	// Opening again, as the server and a worker sidecar both do, imports nothing twice.
	j = open(t, dir)
	defer j.Close()

	if got := causes(t, j.Queue); len(got) != 3 || got["bafy-a"] != 1 || got["bafy-b"] != 1 || got["bafy-c"] != 1 {
		t.Fatalf("imported events %v, want bafy-a, bafy-b and bafy-c once each", got)
	}
	if n, err := j.Queue.DeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("%d dead letters (%v), want the 1 imported", n, err)
	}
	if _, err := j.Receipts.Get(ctx, oldReceipt.Root().Link().String()); err != nil {
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

func writeOldFile(t *testing.T, path string, fill func(*sql.DB, *sqlitedb.Committer)) {
	t.Helper()
	db, err := sqlitedb.Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	writes := sqlitedb.NewCommitter(db)
	fill(db, writes)
	writes.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
