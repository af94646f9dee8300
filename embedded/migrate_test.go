package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/embedded"
)

// TestOpenRefusesNewerFile opens a directory one of whose files a newer
// egressd migrated: Open fails, naming the file and both versions, and
// leaves the file as it was.
func TestOpenRefusesNewerFile(t *testing.T) {
	dir := t.TempDir()
	open(t, dir).Close()
	path := filepath.Join(dir, "ledger.db")
	if _, err := rawFile(t, path).Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	_, err := embedded.Open(context.Background(), dir, embedded.Options{})
	var version *embedded.VersionError
	known := embedded.Latest("ledger.db")
	if !errors.As(err, &version) || version.File != path || version.Found != 99 || version.Known != known {
		t.Fatalf("Open over a version-99 ledger = %v; want a VersionError for %s, 99 over %d", err, path, known)
	}
	for _, part := range []string{path, "version 99", fmt.Sprintf("up to %d", known)} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error %q does not say %s", err, part)
		}
	}
	if v := userVersion(t, path); v != 99 {
		t.Fatalf("the refused file is now at version %d", v)
	}
}

// TestConcurrentOpensOfNewDirectory opens one new directory from several
// goroutines at once, as a server and its worker sidecar started together
// do: every Open succeeds, each file is migrated once, and all share it.
func TestConcurrentOpensOfNewDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // Open creates the directory too
	ctx := context.Background()
	const n = 4
	dbs := make([]*embedded.DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = embedded.Open(ctx, dir, embedded.Options{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	for _, name := range dataFiles {
		if v, want := userVersion(t, filepath.Join(dir, name+".db")), embedded.Latest(name+".db"); v != want {
			t.Errorf("%s.db at version %d, want %d", name, v, want)
		}
	}
	// What one wrote, another reads.
	if err := dbs[0].Customers.Provision(ctx, "did:key:s", "did:mailto:a", "did:web:p"); err != nil {
		t.Fatal(err)
	}
	if got, err := dbs[n-1].Customers.Customer(ctx, "did:key:s", []string{"did:web:p"}); err != nil || got != "did:mailto:a" {
		t.Fatalf("Customer through another DB = %q, %v", got, err)
	}
}

// TestCustomersFromBeforeProducts opens a customers.db an egressd from
// before products wrote: the product column is added, empty, and the next
// SetCustomer fills it in.
func TestCustomersFromBeforeProducts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	writeOldFile(t, filepath.Join(dir, "customers.db"), `
		CREATE TABLE consumer (consumer TEXT NOT NULL, provider TEXT NOT NULL, customer TEXT NOT NULL,
			inserted_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (consumer, provider));
		CREATE TABLE customer (customer TEXT PRIMARY KEY, account TEXT NOT NULL DEFAULT '',
			inserted_at TEXT NOT NULL, updated_at TEXT NOT NULL);
		INSERT INTO consumer VALUES ('did:key:s', 'did:web:p', 'did:mailto:a', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z');
		INSERT INTO customer VALUES ('did:mailto:a', 'stripe:cus_A', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z');`)

	db := open(t, dir)
	if got, err := db.Customers.Customer(ctx, "did:key:s", []string{"did:web:p"}); err != nil || got != "did:mailto:a" {
		t.Fatalf("Customer = %q, %v", got, err)
	}
	if account, err := db.Customers.Account(ctx, "did:mailto:a"); err != nil || account != "stripe:cus_A" {
		t.Fatalf("Account = %q, %v", account, err)
	}
	var product string
	if err := rawFile(t, filepath.Join(dir, "customers.db")).QueryRow(`SELECT product FROM customer`).Scan(&product); err != nil || product != "" {
		t.Fatalf("the added product = %q, %v; want empty", product, err)
	}
	rec, err := db.Customers.SetCustomer(ctx, customers.CustomerUpdate{Customer: "did:mailto:a", Account: "stripe:cus_A", DefaultProduct: customers.DefaultProduct})
	if err != nil || rec.Product != customers.DefaultProduct {
		t.Fatalf("SetCustomer = %+v, %v; want the default product filled in", rec, err)
	}
}
