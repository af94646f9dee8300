package sqlite_test

import (
	"context"
	"database/sql"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

var march = time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)

func bigEvent(cause, customer, space string, bytes int64) billing.Event {
	return billing.Event{Space: space, Customer: customer, Resource: "r", Bytes: bytes, ServedAt: march, Cause: cause}
}

// openFile opens the ledger's database file directly, as an operator's
// sqlite3 shell or an older egressd would.
func openFile(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestTotalsStayIntegers is the finding: events near 2^63-1 in one month
// used to turn the stored total into a REAL. It must stay an INTEGER, exact.
func TestTotalsStayIntegers(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	ctx := context.Background()
	// One call: the new bytes alone pass 2^63-1 before the stored total is read.
	if _, _, err := l.Record(ctx, []billing.Event{
		bigEvent("c1", "did:mailto:a", "did:key:s", math.MaxInt64),
		bigEvent("c2", "did:mailto:a", "did:key:s", math.MaxInt64),
		bigEvent("c3", "did:mailto:a", "did:key:s", 1),
	}, billing.BatchRule{Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	var (
		kind  string
		bytes int64
	)
	if err := openFile(t, dir).QueryRow(`SELECT typeof(bytes), bytes FROM monthly`).Scan(&kind, &bytes); err != nil {
		t.Fatal(err)
	}
	if kind != "integer" || bytes != math.MaxInt64 {
		t.Fatalf("stored total is %s %d, want integer %d", kind, bytes, int64(math.MaxInt64))
	}
	u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03"})
	if err != nil || len(u) != 1 || u[0].Bytes != math.MaxInt64 || u[0].Events != 3 {
		t.Fatalf("Usage = %+v, %v; want %d bytes in 3 events", u, err, int64(math.MaxInt64))
	}
}

// TestReadsTotalLeftAsReal opens a data directory an older egressd wrote:
// its sum passed 2^63-1 and SQLite stored a REAL. Reading that row names
// it; other rows still read; new events for it are refused, not added.
func TestReadsTotalLeftAsReal(t *testing.T) {
	dir := t.TempDir()
	data := openData(t, dir)
	l := data.Ledger
	ctx := context.Background()
	if _, _, err := l.Record(ctx, []billing.Event{
		bigEvent("old-1", "did:mailto:big", "did:key:zbig", math.MaxInt64-5),
		bigEvent("old-3", "did:mailto:small", "did:key:zsmall", 4096),
	}, billing.BatchRule{}); err != nil {
		t.Fatal(err)
	}
	data.Close()
	// What the old Record did with a second event: bytes = bytes + 10.
	db := openFile(t, dir)
	if _, err := db.Exec(`INSERT INTO ledger (cause, space, customer, resource, bytes, served_at, month, state, recorded_at, updated_at, batch)
		VALUES ('old-2', 'did:key:zbig', 'did:mailto:big', 'r', 10, ?, '2025-03', 'reported', 0, 0, 'old-2')`, march.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO batches (id, customer, ts, bytes, events, state, recorded_at, updated_at)
		VALUES ('old-2', 'did:mailto:big', ?, 10, 1, 'reported', 0, 0)`, march.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE monthly SET bytes = bytes + 10, events = events + 1 WHERE customer = 'did:mailto:big'`); err != nil {
		t.Fatal(err)
	}
	var kind string
	if err := db.QueryRow(`SELECT typeof(bytes) FROM monthly WHERE customer = 'did:mailto:big'`).Scan(&kind); err != nil || kind != "real" {
		t.Fatalf("the old statement left a %q total (%v); the test needs a real one", kind, err)
	}

	l = openLedger(t, dir)
	_, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03"})
	if err == nil || !strings.Contains(err.Error(), "did:mailto:big") || !strings.Contains(err.Error(), "did:key:zbig") || !strings.Contains(err.Error(), "2025-03") {
		t.Fatalf("Usage over a REAL total = %v; want an error naming the row", err)
	}
	if u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:small"}); err != nil || len(u) != 1 || u[0].Bytes != 4096 {
		t.Fatalf("Usage of another customer = %+v, %v; want its 4096 bytes", u, err)
	}
	counts, err := l.Count(ctx, billing.UsageFilter{Month: "2025-03"})
	if err != nil || counts[billing.Pending] != 2 || counts[billing.Reported] != 1 {
		t.Fatalf("Count = %v, %v; want 2 pending, 1 reported", counts, err)
	}

	// In one call with an event for another total, which is unaffected.
	es, bs, err := l.Record(ctx, []billing.Event{
		bigEvent("new-1", "did:mailto:big", "did:key:zbig", 1),
		bigEvent("new-2", "did:mailto:small", "did:key:zsmall", 1),
	}, billing.BatchRule{})
	if err != nil || es[0].State != billing.Failed || !strings.HasPrefix(es[0].Reason, billing.ReasonTotalOverflow) {
		t.Fatalf("Record into the REAL total = %+v, %v; want failed with the overflow reason", es, err)
	}
	if es[1].State != billing.Pending || len(bs) != 1 || bs[0].ID != "new-2" {
		t.Fatalf("Record beside the REAL total = %+v, %+v; want new-2 pending in its batch", es[1], bs)
	}
	if u, err := l.Usage(ctx, billing.UsageFilter{Month: "2025-03", Customer: "did:mailto:small"}); err != nil || len(u) != 1 || u[0].Bytes != 4097 {
		t.Fatalf("Usage of another customer = %+v, %v; want its 4097 bytes", u, err)
	}
	var events int64
	if err := db.QueryRow(`SELECT typeof(bytes), events FROM monthly WHERE customer = 'did:mailto:big'`).Scan(&kind, &events); err != nil {
		t.Fatal(err)
	}
	if kind != "real" || events != 3 {
		t.Fatalf("after a refused event the total is %s with %d events; want it left as it was, 3 events", kind, events)
	}
}
