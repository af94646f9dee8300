package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/embedded"
)

// TestReadOnlyReadsWhatWasWritten opens a directory read-only, as usage and
// billing list do: it reads what a read-write open stored, and refuses to
// write.
func TestReadOnlyReadsWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db := open(t, dir)
	p := customers.Provisioning{Space: "did:key:z6MkSpace", Customer: "did:mailto:example.com:alice", Provider: "did:key:z6MkService", NewCustomerProduct: customers.DefaultProduct}
	if err := db.Customers.ProvisionSpace(ctx, p); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ro, err := embedded.Open(ctx, dir, embedded.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a directory egressd wrote: %v", err)
	}
	defer ro.Close()
	if c, err := ro.Customers.Customer(ctx, p.Space, []string{p.Provider}); err != nil || c != p.Customer {
		t.Fatalf("read-only Customer = %q, %v; want %s", c, err, p.Customer)
	}
	p.Space = "did:key:z6MkOther"
	if err := ro.Customers.ProvisionSpace(ctx, p); err == nil {
		t.Fatal("a read-only open accepted a write")
	}
}

// TestReadOnlyRefusesOlderFile: a file an older egressd wrote is not
// migrated by a read-only open, and is not read either (this binary knows
// only the newest layout): the error names the file and says what to do.
func TestReadOnlyRefusesOlderFile(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	path := filepath.Join(dir, "ledger.db")
	if _, err := rawFile(t, path).Exec(`PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	if embedded.Latest("ledger.db") <= 1 {
		t.Fatal("the test needs ledger.db to have more than one version, to have an older layout to refuse")
	}
	_, err := embedded.Open(context.Background(), dir, embedded.Options{ReadOnly: true})
	var stale *embedded.StaleError
	if !errors.As(err, &stale) || stale.File != path || stale.Found != 1 {
		t.Fatalf("read-only open over a version-1 ledger = %v; want a StaleError for %s", err, path)
	}
	if !strings.Contains(err.Error(), "will not migrate") {
		t.Errorf("the error %q does not say why it stops", err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Fatalf("a read-only open migrated the file to version %d", v)
	}
}

// TestReadOnlyCreatesNothing: a read-only open of a directory without the
// files says so, and leaves the directory empty.
func TestReadOnlyCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	_, err := embedded.Open(context.Background(), dir, embedded.Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "no customers.db in "+dir) {
		t.Fatalf("read-only open of an empty directory = %v; want it to name the missing file", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("a read-only open left %d files behind", len(names))
	}
}
