package main_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/embedded"
)

// TestUsageOfHugeMonth: a customer whose spaces each hold the largest
// monthly total, and an event past it. `egressd usage` still reports the
// month, with the customer's sum exact although it passes 2^63-1, and the
// refused event shows as failed.
func TestUsageOfHugeMonth(t *testing.T) {
	data := t.TempDir()
	stores, err := embedded.Open(context.Background(), data, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := stores.Ledger
	at := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	for i, ev := range []billing.Event{
		{Space: "did:key:z6Mkone", Bytes: math.MaxInt64},
		{Space: "did:key:z6Mktwo", Bytes: math.MaxInt64 - 1},
		{Space: "did:key:z6Mktwo", Bytes: 1},
		{Space: "did:key:z6Mktwo", Bytes: 1}, // past the total: refused
	} {
		ev.Customer, ev.Resource, ev.ServedAt = "did:mailto:example.com:big", "bafkreires", at
		ev.Cause = "bafy-huge-" + string(rune('a'+i))
		if _, _, err := l.Record(context.Background(), []billing.Event{ev}, billing.BatchRule{}); err != nil {
			t.Fatal(err)
		}
	}
	stores.Close()

	out := run(t, "usage", "--data-dir", data, "--month", "2025-03", "--json")
	var rep struct {
		Bytes, Events json.Number
		Ledger        map[string]int64
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("usage --json printed %q: %v", out, err)
	}
	const sum = "18446744073709551614" // 2 × (2^63-1)
	if rep.Bytes != sum || rep.Events != "4" || rep.Ledger["pending"] != 3 || rep.Ledger["failed"] != 1 {
		t.Fatalf("usage --json = %s", out)
	}
	if table := run(t, "usage", "--data-dir", data, "--month", "2025-03"); !strings.Contains(table, sum) {
		t.Fatalf("usage table has no total of %s bytes:\n%s", sum, table)
	}
}

// TestUsageOfOldRealTotal opens a data directory an older egressd wrote, in
// which a month's sum passed 2^63-1 and SQLite stored it as a REAL: the
// report of that month names the row, and other customers still report.
func TestUsageOfOldRealTotal(t *testing.T) {
	data := t.TempDir()
	stores, err := embedded.Open(context.Background(), data, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := stores.Ledger
	at := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, ev := range []billing.Event{
		{Customer: "did:mailto:example.com:big", Space: "did:key:z6Mkbig", Bytes: math.MaxInt64, Cause: "bafy-old-big"},
		{Customer: "did:mailto:example.com:small", Space: "did:key:z6Mksmall", Bytes: 2048, Cause: "bafy-old-small"},
	} {
		ev.Resource, ev.ServedAt = "bafkreires", at
		if _, _, err := l.Record(context.Background(), []billing.Event{ev}, billing.BatchRule{}); err != nil {
			t.Fatal(err)
		}
	}
	stores.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	// What the older egressd's Record did for one more event.
	_, err = db.Exec(`UPDATE monthly SET bytes = bytes + 100, events = events + 1 WHERE customer = 'did:mailto:example.com:big'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	stderr := runFails(t, "usage", "--data-dir", data, "--month", "2025-03")
	for _, want := range []string{"2025-03", "did:mailto:example.com:big", "did:key:z6Mkbig", "not integers"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("usage over a REAL total said %q; want it to name %q", stderr, want)
		}
	}
	u := decodeUsage(t, run(t, "usage", "--data-dir", data, "--month", "2025-03", "--customer", "did:mailto:example.com:small", "--json"))
	if u.Bytes != 2048 || u.Events != 1 {
		t.Fatalf("usage of another customer = %+v, want 2048 bytes in 1 event", u)
	}
}
