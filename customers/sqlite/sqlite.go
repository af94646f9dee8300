// Package sqlite is the embedded customer store: consumer and customer
// records in dataDir/customers.db, laid out like Storacha's consumer and
// customer tables so the two backends answer the same questions.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/internal/sqlitedb"
)

const schema = `
CREATE TABLE IF NOT EXISTS consumer (
	consumer     TEXT NOT NULL, -- the space did:key
	provider     TEXT NOT NULL, -- the service DID the space is provisioned under
	customer     TEXT NOT NULL, -- did:mailto:...
	inserted_at  TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	PRIMARY KEY (consumer, provider)
);
CREATE TABLE IF NOT EXISTS customer (
	customer    TEXT PRIMARY KEY,
	account     TEXT NOT NULL DEFAULT '', -- stripe:cus_..., empty for free-tier customers
	inserted_at TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);
`

// Store is the embedded customers.Store.
type Store struct {
	db *sql.DB
	// customer runs on every invocation: prepared once, with the providers
	// passed as one JSON array so the statement does not depend on their number.
	customer *sql.Stmt
}

var _ customers.Store = (*Store)(nil)

// Open opens dataDir/customers.db.
func Open(dataDir string) (*Store, error) {
	db, err := sqlitedb.Open(filepath.Join(dataDir, "customers.db"), schema)
	if err != nil {
		return nil, err
	}
	customer, err := db.Prepare(`SELECT customer FROM consumer
		WHERE consumer = ? AND provider IN (SELECT value FROM json_each(?))
		ORDER BY updated_at DESC LIMIT 1`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing customer store: %w", err)
	}
	return &Store{db: db, customer: customer}, nil
}

// Close releases the database.
func (s *Store) Close() error { return s.db.Close() }

// Customer finds the customer paying for space under one of providers.
func (s *Store) Customer(ctx context.Context, space string, providers []string) (string, error) {
	if len(providers) == 0 {
		return "", customers.ErrNotFound
	}
	list, err := json.Marshal(providers)
	if err != nil {
		return "", err
	}
	var customer string
	err = s.customer.QueryRowContext(ctx, space, string(list)).Scan(&customer)
	if errors.Is(err, sql.ErrNoRows) {
		return "", customers.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("looking up consumer %s: %w", space, err)
	}
	return customer, nil
}

// Account returns the customer's payment account ("" for none).
func (s *Store) Account(ctx context.Context, customer string) (string, error) {
	var account string
	err := s.db.QueryRowContext(ctx, `SELECT account FROM customer WHERE customer = ?`, customer).Scan(&account)
	if errors.Is(err, sql.ErrNoRows) {
		return "", customers.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("looking up customer %s: %w", customer, err)
	}
	return account, nil
}

// Provision records that customer pays for space under provider, replacing
// an earlier customer for the same space and provider. The customer record is
// created (with no account) if it does not exist yet.
func (s *Store) Provision(ctx context.Context, space, customer, provider string) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO consumer (consumer, provider, customer, inserted_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (consumer, provider) DO UPDATE SET customer = excluded.customer, updated_at = excluded.updated_at`,
		space, provider, customer, now, now); err != nil {
		return fmt.Errorf("provisioning %s: %w", space, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO customer (customer, inserted_at, updated_at) VALUES (?, ?, ?) ON CONFLICT (customer) DO NOTHING`,
		customer, now, now); err != nil {
		return fmt.Errorf("provisioning customer %s: %w", customer, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	return nil
}

// SetAccount sets the customer's payment account, creating the customer.
func (s *Store) SetAccount(ctx context.Context, customer, account string) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO customer (customer, account, inserted_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET account = excluded.account, updated_at = excluded.updated_at`,
		customer, account, now, now); err != nil {
		return fmt.Errorf("setting account of %s: %w", customer, err)
	}
	return nil
}
