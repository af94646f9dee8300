package embedded_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/receipts/receiptstest"
)

// TestBackupWhileWriting backs the data directory up three times while
// events and their receipts are being recorded, and opens each backup as a
// data directory (a restore): each holds a prefix of what was recorded,
// every event with its receipt, the customers provisioned before it, and
// the extra file named.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db := open(t, dir)
	if err := db.Customers.Provision(ctx, "did:key:z6Mkspace", "did:mailto:example.com:alice", "did:web:egress.example"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "service.key"), []byte("Mgkey\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	const n = 150
	rcpts := make([]receipt.AnyReceipt, n)
	written := make([]string, n)
	for i := range rcpts {
		rcpts[i] = receiptstest.NewReceipt(t)
		written[i] = rcpts[i].Ran().Link().String()
	}
	var (
		wg       sync.WaitGroup
		progress = make(chan int, n)
	)
	wg.Go(func() {
		defer close(progress)
		for i, r := range rcpts {
			if err := db.Record(ctx, []billing.Event{event(written[i])}, []receipt.AnyReceipt{r}); err != nil {
				t.Error(err)
				return
			}
			progress <- i
		}
	})
	var backups []string
	for i := 0; i < 3; i++ {
		// Wait for a third more of the writes, so the backups fall in the middle.
		for range n / 4 {
			<-progress
		}
		out := filepath.Join(t.TempDir(), fmt.Sprintf("backup-%d", i))
		copied, err := embedded.Backup(ctx, dir, out, "service.key", "missing.key")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"journal.db", "ledger.db", "customers.db", "revocations.db", "service.key"}
		if !slices.Equal(copied, want) {
			t.Errorf("Backup copied %v, want %v", copied, want)
		}
		backups = append(backups, out)
	}
	for range progress {
	}
	wg.Wait()

	for _, out := range backups {
		if key, err := os.ReadFile(filepath.Join(out, "service.key")); err != nil || string(key) != "Mgkey\n" {
			t.Errorf("%s: service.key = %q, %v", out, key, err)
		}
		restored := open(t, out)
		got := causes(t, restored.Queue)
		if len(got) == 0 || len(got) == n {
			t.Logf("%s holds %d of %d events: not taken while writing", out, len(got), n)
		}
		for i, cause := range written {
			if i < len(got) && got[cause] != 1 {
				t.Errorf("%s: event %d of %d is missing: not a prefix of what was written", out, i, len(got))
			}
			if i >= len(got) && got[cause] != 0 {
				t.Errorf("%s: event %d is there but an earlier one is not", out, i)
			}
			if _, err := restored.Receipts.Get(ctx, cause); (err == nil) != (i < len(got)) {
				t.Errorf("%s: event %d queued %v, its receipt: %v", out, i, i < len(got), err)
			}
		}
		if c, err := restored.Customers.Customer(ctx, "did:key:z6Mkspace", []string{"did:web:egress.example"}); err != nil || c != "did:mailto:example.com:alice" {
			t.Errorf("%s: customer = %q, %v", out, c, err)
		}
	}
}

// TestBackupRestoreRoundTrip: a backup of a data directory nobody has open
// (no -wal or -shm files), copied in place of the original, serves what the
// original held; and what was written after the backup is gone.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := open(t, dir)
	before := receiptstest.NewReceipt(t)
	if err := db.Record(ctx, []billing.Event{event(before.Ran().Link().String())}, []receipt.AnyReceipt{before}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out := filepath.Join(t.TempDir(), "backup")
	if err := os.Mkdir(out, 0o700); err != nil { // an empty directory is accepted
		t.Fatal(err)
	}
	if _, err := embedded.Backup(ctx, dir, out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"journal.db-wal", "journal.db-shm"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("the backup's read-only connection left %s in the data directory", name)
		}
	}

	db = open(t, dir)
	after := receiptstest.NewReceipt(t)
	if err := db.Record(ctx, []billing.Event{event(after.Ran().Link().String())}, []receipt.AnyReceipt{after}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Restore: stopped, the data directory's files replaced by the backup's.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	if _, err := db.Receipts.Get(ctx, before.Ran().Link().String()); err != nil {
		t.Errorf("receipt recorded before the backup, after restore: %v", err)
	}
	if _, err := db.Receipts.Get(ctx, after.Ran().Link().String()); err == nil {
		t.Errorf("receipt recorded after the backup survived the restore")
	}
	if got := causes(t, db.Queue); len(got) != 1 {
		t.Errorf("restored queue holds %v, want the one event from before the backup", got)
	}
}

func TestBackupRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open(t, dir).Close()

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	if _, err := embedded.Backup(ctx, dir, full); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Backup into a non-empty directory = %v, want it refused", err)
	}
	if _, err := embedded.Backup(ctx, t.TempDir(), filepath.Join(t.TempDir(), "b")); err == nil || !strings.Contains(err.Error(), "no egressd data") {
		t.Errorf("Backup of an empty directory = %v, want it refused", err)
	}
	if _, err := embedded.Backup(ctx, filepath.Join(dir, "missing"), filepath.Join(t.TempDir(), "b")); err == nil {
		t.Error("Backup of a missing directory succeeded")
	}
	// A failed backup leaves nothing behind.
	parent := t.TempDir()
	embedded.Backup(ctx, t.TempDir(), filepath.Join(parent, "b"))
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("a failed backup left %v", entries)
	}
}
