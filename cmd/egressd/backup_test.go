package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBackupWhileServing: an operator backs up the data directory of a
// running serve while a gateway records, then restores the backup in place
// of the data directory: the service has the same identity, serves the
// receipts recorded before the backup, and keeps recording.
func TestBackupWhileServing(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data)
	serviceDID := strings.TrimSpace(run(t, "id", "--data-dir", data))
	spaceDID, spaceKey := generateKey(t)
	gatewayDID, gatewayKey := generateKey(t)
	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")
	proof := strings.TrimSpace(run(t, "delegate", "--space-key", spaceKey, "--audience", gatewayDID))
	record := func(url string) receiptView {
		t.Helper()
		v := decodeView(t, run(t, "record", "--url", url, "--key", gatewayKey, "--proof", proof,
			"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "1024"))
		if v.Error != nil {
			t.Fatalf("record failed: %s", v.Error)
		}
		return v
	}
	before := record(srv.URL)

	// Records go on while the backup runs.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				record(srv.URL)
			}
		}
	})
	out := filepath.Join(t.TempDir(), "backup")
	listed := run(t, "backup", "--data-dir", data, "--out", out)
	close(stop)
	wg.Wait()
	for _, name := range []string{"journal.db", "ledger.db", "customers.db", "revocations.db", "service.key"} {
		if !strings.Contains(listed, filepath.Join(out, name)) {
			t.Errorf("backup did not list %s:\n%s", name, listed)
		}
	}
	if stderr := runFails(t, "backup", "--data-dir", data, "--out", out); !strings.Contains(stderr, "not empty") {
		t.Errorf("a second backup into the same directory: %s", stderr)
	}
	srv.stop(t)

	// Restore: with serve stopped, the backup's files replace the data directory's.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(data, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, "id", "--data-dir", data)); got != serviceDID {
		t.Fatalf("restored service DID %s, want %s", got, serviceDID)
	}
	srv = startServe(t, data)
	fetched := decodeView(t, run(t, "receipt", "--url", srv.URL, before.Invocation))
	if fetched.Receipt != before.Receipt || fetched.Verified == nil || !*fetched.Verified {
		t.Fatalf("receipt from before the backup, after restore: %+v", fetched)
	}
	record(srv.URL)
	srv.stop(t)
}
