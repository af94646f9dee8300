package sqlite_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/ledgertest"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/sqlitedb"
)

// openData opens the data directory as egressd does, until the test ends.
func openData(t testing.TB, dir string) *embedded.DB {
	t.Helper()
	db, err := embedded.Open(t.Context(), dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openLedger(t *testing.T, dir string) *sqlite.Ledger {
	t.Helper()
	return openData(t, dir).Ledger
}

func TestLedger(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) billing.Ledger { return openLedger(t, t.TempDir()) })
}

// TestLedgerRepairsMembers changes members' rows behind the ledger's back,
// as a crash half way through a settle in an older build, or an operator's
// sqlite3 shell, could leave them.
func TestLedgerRepairsMembers(t *testing.T) {
	dirs := make(map[billing.Ledger]string)
	ledgertest.RunRepair(t, func(t *testing.T) billing.Ledger {
		dir := t.TempDir()
		l := openLedger(t, dir)
		dirs[l] = dir
		return l
	}, func(t *testing.T, l billing.Ledger, cause string, state billing.State, reason string) {
		res, err := openFile(t, dirs[l]).Exec(`UPDATE ledger SET state = ?, reason = ? WHERE cause = ?`, state, reason, cause)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("desync %s: %d rows", cause, n)
		}
	})
}

// TestLedgerSurvivesReopen checks the ledger is on disk, not in memory: a
// restarted worker must still know which events it has counted, and find
// the batch it was sending.
func TestLedgerSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	data := openData(t, dir)
	l := data.Ledger
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: time.Now(), Cause: "c"}
	if _, bs, err := l.Record(t.Context(), []billing.Event{ev}, billing.BatchRule{Window: time.Minute}); err != nil || len(bs) != 1 {
		t.Fatalf("Record = %v, %v", bs, err)
	}
	data.Close()
	l = openLedger(t, dir)
	es, bs, err := l.Record(t.Context(), []billing.Event{ev}, billing.BatchRule{Window: time.Minute})
	if err != nil || len(bs) != 0 || es[0].Batch != "c" || es[0].State != billing.Pending {
		t.Fatalf("Record after reopening = %+v, %+v, %v; want the stored entry and no new batch", es, bs, err)
	}
	if b, err := l.Batch(t.Context(), "c"); err != nil || b.Bytes != 5 || b.State != billing.Pending {
		t.Fatalf("Batch after reopening = %+v, %v", b, err)
	}
}

// oldLedger writes a ledger file as an egressd from before batches did:
// with the resend column when withResend, without it (older still) when not.
func oldLedger(t *testing.T, dir string, withResend bool, rows ...string) {
	t.Helper()
	schema := `CREATE TABLE ledger (
		cause TEXT PRIMARY KEY, space TEXT NOT NULL, customer TEXT NOT NULL, resource TEXT NOT NULL,
		bytes INTEGER NOT NULL, served_at INTEGER NOT NULL, month TEXT NOT NULL, state TEXT NOT NULL,
		reason TEXT NOT NULL DEFAULT '', recorded_at INTEGER NOT NULL, updated_at INTEGER NOT NULL`
	if withResend {
		schema += `, resend INTEGER NOT NULL DEFAULT 0`
	}
	schema += `);
	CREATE INDEX ledger_state ON ledger (state, customer, cause);
	CREATE INDEX ledger_month ON ledger (month, customer, state);
	CREATE TABLE monthly (customer TEXT NOT NULL, month TEXT NOT NULL, space TEXT NOT NULL,
		bytes INTEGER NOT NULL, events INTEGER NOT NULL, PRIMARY KEY (customer, month, space));`
	old, err := sqlitedb.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Exec(schema); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if _, err := old.Exec(row); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLedgerFromBeforeBatches opens a ledger an egressd without batches
// created, with a resend stored on a rejected entry: each entry becomes a
// batch of one with its state, reason and resend, known events stay known,
// the totals stay as they were, and settling and rejecting apply to them.
func TestLedgerFromBeforeBatches(t *testing.T) {
	dir := t.TempDir()
	jan := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	ms := jan.UnixMilli()
	oldLedger(t, dir, true,
		`INSERT INTO ledger VALUES ('c1', 'did:key:s', 'did:mailto:a', 'r', 5, `+strconv.FormatInt(ms, 10)+`, '2025-01', 'reported', '', 1, 2, 0)`,
		`INSERT INTO ledger VALUES ('c2', 'did:key:s', 'did:mailto:a', 'r', 7, `+strconv.FormatInt(ms+1000, 10)+`, '2025-01', 'rejected', 'meter_event_customer_not_found', 3, 4, 2)`,
		`INSERT INTO ledger VALUES ('c3', 'did:key:s', 'did:mailto:b', 'r', 9, `+strconv.FormatInt(ms, 10)+`, '2025-01', 'pending', '', 5, 6, 0)`,
		`INSERT INTO monthly VALUES ('did:mailto:a', '2025-01', 'did:key:s', 12, 2), ('did:mailto:b', '2025-01', 'did:key:s', 9, 1)`)

	data := openData(t, dir)
	l := data.Ledger
	ctx := t.Context()
	for _, want := range []billing.Batch{
		{ID: "c1", Customer: "did:mailto:a", Timestamp: jan, Bytes: 5, Events: 1, State: billing.Reported, RecordedAt: time.UnixMilli(1).UTC(), UpdatedAt: time.UnixMilli(2).UTC()},
		{ID: "c2", Customer: "did:mailto:a", Timestamp: jan.Add(time.Second), Bytes: 7, Events: 1, Resend: 2, State: billing.Rejected, Reason: "meter_event_customer_not_found", RecordedAt: time.UnixMilli(3).UTC(), UpdatedAt: time.UnixMilli(4).UTC()},
		{ID: "c3", Customer: "did:mailto:b", Timestamp: jan, Bytes: 9, Events: 1, State: billing.Pending, RecordedAt: time.UnixMilli(5).UTC(), UpdatedAt: time.UnixMilli(6).UTC()},
	} {
		if got, err := l.Batch(ctx, want.ID); err != nil || got != want {
			t.Fatalf("migrated batch = %+v, %v\nwant %+v", got, err, want)
		}
	}
	es, err := l.Entries(ctx, billing.EntryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Batch != e.Cause {
			t.Fatalf("migrated entry %+v is not in the batch of its cause", e)
		}
	}
	var indexes []string
	rows, err := openFile(t, dir).Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		rows.Scan(&name)
		indexes = append(indexes, name)
	}
	rows.Close()
	if want := []string{"ledger_batch_members", "ledger_month", "ledger_unbilled"}; !slices.Equal(indexes, want) {
		t.Fatalf("the migrated ledger's indexes = %v, want %v", indexes, want)
	}
	if es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Pending, billing.Rejected}}); err != nil || len(es) != 2 {
		t.Fatalf("pending and rejected entries = %+v, %v; want c2 and c3", es, err)
	}

	// Known events stay known; new ones are recorded beside them.
	evs := []billing.Event{
		{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: jan, Cause: "c1"},
		{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 1, ServedAt: jan, Cause: "c4"},
	}
	got, bs, err := l.Record(ctx, evs, billing.BatchRule{Window: time.Minute})
	if err != nil || len(bs) != 1 || bs[0].ID != "c4" || got[0].State != billing.Reported || got[0].Batch != "c1" {
		t.Fatalf("Record over a migrated ledger = %+v, %+v, %v", got, bs, err)
	}
	u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-01", Customer: "did:mailto:a"})
	if err != nil || len(u) != 1 || u[0].Bytes != 13 || u[0].Events != 3 {
		t.Fatalf("usage = %+v, %v; want 13 bytes in 3 events", u, err)
	}

	// The stored resend rules: a rejection of resend 1 is too late for c2,
	// a redrive's resend 3 takes it.
	if err := l.Reject(ctx, "c2", 1, "late"); err != nil {
		t.Fatal(err)
	}
	c2, _ := l.Batch(ctx, "c2")
	c2.Resend = 3
	if err := l.Settle(ctx, billing.Settlement{Batch: c2, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	if b, err := l.Batch(ctx, "c2"); err != nil || b.State != billing.Reported || b.Resend != 3 || b.Reason != "" {
		t.Fatalf("redriven c2 = %+v, %v; want reported under resend 3", b, err)
	}
	if es, err := l.Entries(ctx, billing.EntryFilter{Batch: "c2"}); err != nil || len(es) != 1 || es[0].State != billing.Reported {
		t.Fatalf("c2's entry = %+v, %v; want reported", es, err)
	}

	// Opening it again finds nothing left to migrate.
	data.Close()
	l = openLedger(t, dir)
	if b, err := l.Batch(ctx, "c2"); err != nil || b.State != billing.Reported || b.Resend != 3 {
		t.Fatalf("c2 after reopening = %+v, %v", b, err)
	}
}

// TestLedgerFromBeforeResends opens a ledger older still, without the
// resend column: its entries become batches at resend 0, and a rejection
// and a redrive apply to them.
func TestLedgerFromBeforeResends(t *testing.T) {
	dir := t.TempDir()
	oldLedger(t, dir, false, `INSERT INTO ledger VALUES ('c', 'did:key:s', 'did:mailto:a', 'r', 5, 0, '1970-01', 'reported', '', 0, 0)`)

	l := openLedger(t, dir)
	ctx := t.Context()
	if err := l.Reject(ctx, "c", 0, "meter_event_customer_not_found: gone"); err != nil {
		t.Fatal(err)
	}
	es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Rejected}})
	if err != nil || len(es) != 1 || es[0].Batch != "c" {
		t.Fatalf("rejected entries = %+v, %v; want c in its own batch", es, err)
	}
	b, err := l.Batch(ctx, "c")
	if err != nil || b.Resend != 0 || b.State != billing.Rejected {
		t.Fatalf("batch c = %+v, %v; want rejected at resend 0", b, err)
	}
	b.Resend = 1
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	es, err = l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Reported}})
	if err != nil || len(es) != 1 || es[0].Cause != "c" {
		t.Fatalf("reported entries = %+v, %v; want c", es, err)
	}
	if b, err := l.Batch(ctx, "c"); err != nil || b.Resend != 1 || b.State != billing.Reported {
		t.Fatalf("batch c = %+v, %v; want reported at resend 1", b, err)
	}
}

// TestLedgerFromBeforeAccounts opens a ledger whose batches table an
// egressd from before Batch.Account created: the column is added, its
// batches read with no account, and settling stores one.
func TestLedgerFromBeforeAccounts(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	old, err := sqlitedb.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The layout of then, with one pending event in its batch of one.
	if _, err := old.Exec(`CREATE TABLE ledger (
			cause TEXT PRIMARY KEY, space TEXT NOT NULL, customer TEXT NOT NULL, resource TEXT NOT NULL,
			bytes INTEGER NOT NULL, served_at INTEGER NOT NULL, month TEXT NOT NULL, state TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '', recorded_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
			batch TEXT NOT NULL DEFAULT '');
		CREATE INDEX ledger_unbilled ON ledger (state, customer, cause) WHERE state <> 'reported';
		CREATE INDEX ledger_month ON ledger (month, customer, state);
		CREATE INDEX ledger_batch_members ON ledger (batch) WHERE batch <> cause;
		CREATE TABLE batches (id TEXT PRIMARY KEY, customer TEXT NOT NULL, ts INTEGER NOT NULL,
			bytes INTEGER NOT NULL, events INTEGER NOT NULL, resend INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '', recorded_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
		CREATE INDEX batches_customer ON batches (customer, ts, id);
		CREATE TABLE monthly (customer TEXT NOT NULL, month TEXT NOT NULL, space TEXT NOT NULL,
			bytes INTEGER NOT NULL, events INTEGER NOT NULL, PRIMARY KEY (customer, month, space));
		INSERT INTO ledger VALUES ('c', 'did:key:s', 'did:mailto:a', 'r', 5, 0, '1970-01', 'pending', '', 0, 0, 'c');
		INSERT INTO batches VALUES ('c', 'did:mailto:a', 0, 5, 1, 0, 'pending', '', 0, 0);
		INSERT INTO monthly VALUES ('did:mailto:a', '1970-01', 'did:key:s', 5, 1);`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	data := openData(t, dir)
	l := data.Ledger
	b, err := l.Batch(ctx, "c")
	if err != nil || b.Account != "" || b.State != billing.Pending {
		t.Fatalf("batch c after adding accounts = %+v, %v; want pending with no account", b, err)
	}
	b.Account = "stripe:cus_1"
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	data.Close()
	l = openLedger(t, dir)
	if b, err := l.Batch(ctx, "c"); err != nil || b.Account != "stripe:cus_1" || b.State != billing.Reported {
		t.Fatalf("batch c = %+v, %v; want reported to stripe:cus_1", b, err)
	}
}

// TestLedgerCapsMembers records more events of one window than a batch of
// this ledger holds, with no cap in the rule: the rest start the next batch.
func TestLedgerCapsMembers(t *testing.T) {
	l := openLedger(t, t.TempDir())
	at := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	evs := make([]billing.Event, 1001)
	for i := range evs {
		evs[i] = billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 1, ServedAt: at, Cause: fmt.Sprintf("c%04d", i)}
	}
	_, bs, err := l.Record(t.Context(), evs, billing.BatchRule{Window: time.Hour})
	if err != nil || len(bs) != 2 || bs[0].Events != 1000 || bs[1].Events != 1 || bs[1].ID != "c1000" {
		t.Fatalf("1001 events of one window = %d batches, %v; want 1000 then 1", len(bs), err)
	}
}

// TestLedgerSettleUnknownAmongKnown settles a batch never recorded beside
// one that was: the error names it and wraps ErrNotFound, the other applies.
func TestLedgerSettleUnknownAmongKnown(t *testing.T) {
	l := openLedger(t, t.TempDir())
	ctx := t.Context()
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 1, ServedAt: time.Now(), Cause: "known"}
	_, bs, err := l.Record(ctx, []billing.Event{ev}, billing.BatchRule{})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Settle(ctx, billing.Settlement{Batch: billing.Batch{ID: "ghost"}, State: billing.Reported},
		billing.Settlement{Batch: bs[0], State: billing.Reported})
	if !errors.Is(err, billing.ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("Settle = %v, want ErrNotFound naming ghost", err)
	}
	if b, err := l.Batch(ctx, "known"); err != nil || b.State != billing.Reported {
		t.Fatalf("the known batch = %+v, %v; want reported", b, err)
	}
}

// TestLedgerRefusesBadWindow records with a window that does not divide an
// hour, which would let a batch straddle two hours, or two months.
func TestLedgerRefusesBadWindow(t *testing.T) {
	l := openLedger(t, t.TempDir())
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 1, ServedAt: time.Now(), Cause: "c"}
	for _, w := range []time.Duration{7 * time.Minute, -time.Minute, 1500 * time.Millisecond} {
		if _, _, err := l.Record(t.Context(), []billing.Event{ev}, billing.BatchRule{Window: w}); err == nil {
			t.Fatalf("Record with window %v: no error", w)
		}
	}
	if _, err := l.Batch(t.Context(), "c"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("a refused Record left batch c: %v", err)
	}
}

// TestLedgerBatchesPages lists more batches than one page of Batches,
// many sharing a timestamp across the page boundary: each comes once.
func TestLedgerBatchesPages(t *testing.T) {
	l := openLedger(t, t.TempDir())
	ctx := t.Context()
	at := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	var evs []billing.Event
	for i := range 1234 {
		// Ten batches a millisecond, in an order that is not the IDs'.
		evs = append(evs, billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 1,
			ServedAt: at.Add(time.Duration(i/10) * time.Millisecond), Cause: fmt.Sprintf("c%04d", (i*7919)%1234)})
	}
	if _, _, err := l.Record(ctx, evs, billing.BatchRule{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []billing.BatchFilter{
		{Customer: "did:mailto:a", From: at, To: at.Add(time.Second)},
		{Customer: "did:mailto:a"}, // both ends open
	} {
		seen := make(map[string]bool)
		err := l.Batches(ctx, f, func(b billing.Batch) error {
			if seen[b.ID] {
				t.Fatalf("batch %s listed twice", b.ID)
			}
			seen[b.ID] = true
			return nil
		})
		if err != nil || len(seen) != 1234 {
			t.Fatalf("Batches(%+v) listed %d of 1234, %v", f, len(seen), err)
		}
	}
}
