package embedded_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/receipts/receiptstest"
	"github.com/egressd/egressd/revocations"
)

// dataFiles are the files of a data directory, as named in testdata dumps.
var dataFiles = []string{"customers", "ledger", "revocations", "journal"}

// restore writes dir/<name>.db from each testdata/<set>/<name>.sql, a dump
// (sqlite3 .dump) of a file an earlier egressd wrote.
func restore(t *testing.T, set, dir string) {
	t.Helper()
	for _, name := range dataFiles {
		text, err := os.ReadFile(filepath.Join("testdata", set, name+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		db := rawFile(t, filepath.Join(dir, name+".db"))
		if _, err := db.Exec(string(text)); err != nil {
			t.Fatalf("restoring %s/%s: %v", set, name, err)
		}
		db.Close()
	}
}

// rawFile opens a file as an operator's sqlite3 shell would, past the stores.
func rawFile(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot is a file's version, schema and rows, as text to compare.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	db := rawFile(t, path)
	var b strings.Builder
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "version %d\n", version)
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var kind, name, text string
		rows.Scan(&kind, &name, &text)
		fmt.Fprintf(&b, "%s %s %s\n", kind, name, text)
		if kind == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			values := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			rows.Scan(ptrs...)
			fmt.Fprintf(&b, "%s %v\n", table, values)
		}
		rows.Close()
	}
	return b.String()
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	var v int
	if err := rawFile(t, path).QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOpenMigratesTodaysDirectory opens a data directory the egressd from
// before numbered migrations wrote (testdata/today: customers with accounts
// and products, a queue with a dead letter and rows imported from queue.db,
// receipts, a ledger with batches in every state and a total near 2^63, a
// revocation): every row reads through the stores as it did, each file is
// at its newest version, opening again changes nothing, and new writes work.
func TestOpenMigratesTodaysDirectory(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	restore(t, "today", dir)

	// What the journal holds, read past the stores, to find it through them.
	journal := rawFile(t, filepath.Join(dir, "journal.db"))
	storedReceipts := map[string]string{} // invocation -> receipt CID
	rows, err := journal.Query(`SELECT invocation, receipt FROM receipt`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var inv, rcpt string
		rows.Scan(&inv, &rcpt)
		storedReceipts[inv] = rcpt
	}
	rows.Close()
	if len(storedReceipts) != 4 {
		t.Fatalf("the fixture holds %d receipts, want 4", len(storedReceipts))
	}
	queued := map[string]int64{} // cause -> bytes
	rows, err = journal.Query(`SELECT body FROM queue`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var body []byte
		var ev billing.Event
		rows.Scan(&body)
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatal(err)
		}
		queued[ev.Cause] = ev.Bytes
	}
	rows.Close()

	db := open(t, dir)
	for _, name := range dataFiles {
		if v, want := userVersion(t, filepath.Join(dir, name+".db")), embedded.Latest(name+".db"); v != want {
			t.Errorf("%s.db at version %d after Open, want %d", name, v, want)
		}
	}

	// Customers: lookups, accounts and products as provisioned.
	provider := []string{"did:web:egressd.example"}
	for space, want := range map[string]string{
		"did:key:z6MkAliceSpace": "did:mailto:example.com:alice",
		"did:key:z6MkBobSpace":   "did:mailto:example.com:bob",
		"did:key:z6MkCarolSpace": "did:mailto:example.com:carol",
	} {
		if got, err := db.Customers.Customer(ctx, space, provider); err != nil || got != want {
			t.Errorf("Customer(%s) = %q, %v; want %s", space, got, err, want)
		}
	}
	for customer, want := range map[string]customers.Record{
		"did:mailto:example.com:alice": {Account: "stripe:cus_Alice", Product: "did:web:free.storacha.network"},
		"did:mailto:example.com:bob":   {Account: "stripe:cus_Bob", Product: "did:web:lite.storacha.network"},
		"did:mailto:example.com:carol": {Product: "did:web:starter.storacha.network"},
	} {
		// SetCustomer with the account it has returns the stored product.
		got, err := db.Customers.SetCustomer(ctx, customers.CustomerUpdate{Customer: customer, Account: want.Account})
		if err != nil || got.Account != want.Account || got.Product != want.Product {
			t.Errorf("customer %s = %+v, %v; want %+v", customer, got, err, want)
		}
	}

	// The ledger: batches in each state, their members, the month's totals.
	for _, want := range []struct {
		id      string
		state   billing.State
		events  int
		bytes   int64
		resend  int
		account string
	}{
		{"bafy-a1", billing.Reported, 2, 300, 0, "stripe:cus_Alice"},
		{"bafy-a3", billing.Pending, 1, 300, 0, ""},
		{"bafy-b1", billing.Unbillable, 1, 400, 2, "stripe:cus_Bob"},
		{"bafy-b2", billing.Rejected, 1, 500, 1, ""},
		{"bafy-big1", billing.Pending, 1, 9223372036854775797, 0, ""},
		{"bafy-big2", billing.Failed, 1, 11, 0, ""},
	} {
		b, err := db.Ledger.Batch(ctx, want.id)
		if err != nil || b.State != want.state || b.Events != want.events || b.Bytes != want.bytes || b.Resend != want.resend || b.Account != want.account {
			t.Errorf("batch %s = %+v, %v; want %+v", want.id, b, err, want)
		}
		es, err := db.Ledger.Entries(ctx, billing.EntryFilter{Batch: want.id})
		if err != nil || len(es) != want.events {
			t.Errorf("entries of %s = %+v, %v; want %d", want.id, es, err, want.events)
		}
		for _, e := range es {
			if e.State != want.state {
				t.Errorf("entry %s is %s, its batch %s", e.Cause, e.State, want.state)
			}
		}
	}
	usage, err := db.Ledger.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:alice"})
	if err != nil || len(usage) != 1 || usage[0].Bytes != 600 || usage[0].Events != 3 {
		t.Errorf("alice's March = %+v, %v; want 600 bytes in 3 events", usage, err)
	}
	// Migration 2 counted the ledger's events into daily totals that add
	// up to the monthly ones.
	days, err := db.Ledger.Daily(ctx, billing.DailyFilter{Customer: "did:mailto:example.com:alice",
		From: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)})
	var dayBytes, dayEvents int64
	for _, d := range days {
		dayBytes += d.Bytes
		dayEvents += d.Events
	}
	if err != nil || dayBytes != 600 || dayEvents != 3 {
		t.Errorf("alice's March days = %+v, %v; want 600 bytes in 3 events, as the month", days, err)
	}
	counts, err := db.Ledger.Count(ctx, billing.UsageFilter{Month: "2025-03"})
	if err != nil || counts[billing.Reported] != 2 || counts[billing.Pending] != 2 || counts[billing.Unbillable] != 1 || counts[billing.Failed] != 1 {
		t.Errorf("March's entries by state = %v, %v", counts, err)
	}

	// The revocation.
	revs, err := db.Revocations.Revocations(ctx, []string{"bafyreidelegation"})
	if err != nil || len(revs) != 1 || revs[0] != (revocations.Revocation{Delegation: "bafyreidelegation", Scope: "did:key:z6MkAliceAgent", Cause: "bafyreirevokeinvocation"}) {
		t.Errorf("revocations = %+v, %v", revs, err)
	}

	// The receipts, by invocation and by their own CID.
	for inv, rcpt := range storedReceipts {
		for _, key := range []string{inv, rcpt} {
			r, err := db.Receipts.Get(ctx, key)
			if err != nil || r.Root().Link().String() != rcpt {
				t.Errorf("receipt %s: %v", key, err)
			}
		}
	}

	// Opening again (while this one is open, as a sidecar does) is a no-op.
	before := map[string]string{}
	for _, name := range dataFiles {
		before[name] = snapshot(t, filepath.Join(dir, name+".db"))
	}
	again := open(t, dir)
	for _, name := range dataFiles {
		if after := snapshot(t, filepath.Join(dir, name+".db")); after != before[name] {
			t.Errorf("opening again changed %s.db:\n%s\nwas\n%s", name, after, before[name])
		}
	}
	again.Close()

	// The queue: the dead letter, and the queued events (leased once, long ago).
	if n, err := db.Queue.DeadLetters(ctx); err != nil || n != 1 {
		t.Errorf("%d dead letters, %v; want 1", n, err)
	}
	if n, err := db.Queue.Depth(ctx); err != nil || n != len(queued) || n != 2 {
		t.Errorf("queue depth %d, %v; want the %d queued", n, err, len(queued))
	}
	msgs, err := db.Queue.Receive(ctx, 10, 0)
	if err != nil || len(msgs) != len(queued) {
		t.Fatalf("received %+v, %v; want %d messages", msgs, err, len(queued))
	}
	for _, m := range msgs {
		if bytes, ok := queued[m.Event.Cause]; !ok || m.Event.Bytes != bytes || m.Receives != 2 {
			t.Errorf("received %+v (receive %d); want one of %v on its second receive", m.Event, m.Receives, queued)
		}
	}
	if err := db.Queue.Ack(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	// New writes, to every file.
	r := receiptstest.NewReceipt(t)
	ev := billing.Event{Space: "did:key:z6MkAliceSpace", Customer: "did:mailto:example.com:alice", Resource: "r", Bytes: 7,
		ServedAt: time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC), Cause: r.Ran().Link().String()}
	if err := db.Record(ctx, []billing.Event{ev}, []receipt.AnyReceipt{r}); err != nil {
		t.Fatal(err)
	}
	if msgs, err := db.Queue.Receive(ctx, 10, 0); err != nil || len(msgs) != 1 || msgs[0].Event.Cause != ev.Cause {
		t.Fatalf("after Record, received %+v, %v", msgs, err)
	}
	if _, bs, err := db.Ledger.Record(ctx, []billing.Event{ev}, billing.BatchRule{Window: time.Minute}); err != nil || len(bs) != 1 {
		t.Fatalf("ledger Record = %+v, %v", bs, err)
	}
	if u, err := db.Ledger.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:example.com:alice"}); err != nil || len(u) != 1 || u[0].Bytes != 607 {
		t.Fatalf("alice's March after a new event = %+v, %v; want 607 bytes", u, err)
	}
	if err := db.Customers.Provision(ctx, "did:key:z6MkDaveSpace", "did:mailto:example.com:dave", provider[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Customers.Customer(ctx, "did:key:z6MkDaveSpace", provider); err != nil || got != "did:mailto:example.com:dave" {
		t.Fatalf("new customer = %q, %v", got, err)
	}
	if err := db.Revocations.Revoke(ctx, revocations.Revocation{Delegation: "bafy-d2", Scope: "did:key:s", Cause: "bafy-c2"}); err != nil {
		t.Fatal(err)
	}
	if revs, err := db.Revocations.Revocations(ctx, []string{"bafy-d2"}); err != nil || len(revs) != 1 {
		t.Fatalf("new revocation = %+v, %v", revs, err)
	}
}
