package sqlite_test

import (
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/ledgertest"
	"github.com/egressd/egressd/billing/sqlite"
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
