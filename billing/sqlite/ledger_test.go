package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/ledgertest"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/internal/sqlitedb"
)

func TestLedger(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) billing.Ledger {
		l, err := sqlite.OpenLedger(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}

// TestLedgerSurvivesReopen checks the ledger is on disk, not in memory: a
// restarted worker must still know which events it has counted.
func TestLedgerSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := sqlite.OpenLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := billing.Event{Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: time.Now(), Cause: "c"}
	if _, isNew, err := l.Record(t.Context(), ev); err != nil || !isNew {
		t.Fatalf("Record = %v, %v", isNew, err)
	}
	l.Close()
	l, err = sqlite.OpenLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, isNew, err := l.Record(t.Context(), ev); err != nil || isNew {
		t.Fatalf("Record after reopening = new %v, %v; want a known duplicate", isNew, err)
	}
}

// TestLedgerFromBeforeResends opens a ledger an egressd without the resend
// column created: the column is added, its entries read as resend 0, and a
// rejection and a redrive's mark apply to them.
func TestLedgerFromBeforeResends(t *testing.T) {
	dir := t.TempDir()
	old, err := sqlitedb.Open(filepath.Join(dir, "ledger.db"), `CREATE TABLE ledger (
		cause TEXT PRIMARY KEY, space TEXT NOT NULL, customer TEXT NOT NULL, resource TEXT NOT NULL,
		bytes INTEGER NOT NULL, served_at INTEGER NOT NULL, month TEXT NOT NULL, state TEXT NOT NULL,
		reason TEXT NOT NULL DEFAULT '', recorded_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO ledger VALUES ('c', 'did:key:s', 'did:mailto:a', 'r', 5, 0, '1970-01', 'reported', '', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	l, err := sqlite.OpenLedger(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := t.Context()
	if err := l.Reject(ctx, "c", 0, "meter_event_customer_not_found: gone"); err != nil {
		t.Fatal(err)
	}
	es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Rejected}})
	if err != nil || len(es) != 1 || es[0].Resend != 0 {
		t.Fatalf("rejected entries = %+v, %v; want c at resend 0", es, err)
	}
	resent := es[0].Event
	resent.Resend = 1
	if err := l.Mark(ctx, resent, billing.Reported, ""); err != nil {
		t.Fatal(err)
	}
	if es, err := l.Entries(ctx, billing.EntryFilter{States: []billing.State{billing.Reported}}); err != nil || len(es) != 1 || es[0].Resend != 1 {
		t.Fatalf("reported entries = %+v, %v; want c at resend 1", es, err)
	}
}
