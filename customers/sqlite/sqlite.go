// Package sqlite is the embedded customer store: consumer and customer
// records in the data directory's customers.db (package embedded opens and
// migrates it), laid out like Storacha's consumer and customer tables and
// kept by the same rules as the DynamoDB store (a space is never moved, a
// customer always has a product), so the two backends answer the same
// questions.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/egressd/egressd/customers"
)

// Store is the embedded customers.Store.
type Store struct {
	db *sql.DB
	// customer runs on every invocation: prepared once, with the providers
	// passed as one JSON array so the statement does not depend on their number.
	customer *sql.Stmt
}

var _ customers.Store = (*Store)(nil)

// New keeps customers in db, which must hold the consumer and customer
// tables already.
func New(db *sql.DB) (*Store, error) {
	customer, err := db.Prepare(`SELECT customer FROM consumer
		WHERE consumer = ? AND provider IN (SELECT value FROM json_each(?))
		ORDER BY updated_at DESC LIMIT 1`)
	if err != nil {
		return nil, fmt.Errorf("preparing customer store: %w", err)
	}
	return &Store{db: db, customer: customer}, nil
}

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

// Provision is ProvisionSpace with customers.DefaultProduct for a new customer.
func (s *Store) Provision(ctx context.Context, space, customer, provider string) error {
	return s.ProvisionSpace(ctx, customers.Provisioning{
		Space: space, Customer: customer, Provider: provider, NewCustomerProduct: customers.DefaultProduct,
	})
}

// ProvisionSpace records that p.Customer pays for p.Space under p.Provider,
// in one transaction: nothing when it does already, nothing and an
// *customers.AlreadyProvisionedError when the space is another customer's or
// under another provider. The customer must have a product; a customer
// without a record (or without a product) gets p.NewCustomerProduct, or the
// answer is customers.ErrNoProduct.
func (s *Store) ProvisionSpace(ctx context.Context, p customers.Provisioning) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT customer, provider FROM consumer WHERE consumer = ? ORDER BY inserted_at`, p.Space)
	if err != nil {
		return fmt.Errorf("provisioning %s: %w", p.Space, err)
	}
	provisioned := false
	for rows.Next() {
		var customer, provider string
		if err := rows.Scan(&customer, &provider); err != nil {
			rows.Close()
			return fmt.Errorf("provisioning %s: %w", p.Space, err)
		}
		if err := customers.CheckHolder(p, customer, provider, "consumer"); err != nil {
			rows.Close()
			return err
		}
		provisioned = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("provisioning %s: %w", p.Space, err)
	}
	if err := ensureProduct(ctx, tx, p.Customer, "", p.NewCustomerProduct, now); err != nil {
		return err
	}
	if !provisioned {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO consumer (consumer, provider, customer, inserted_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			p.Space, p.Provider, p.Customer, now, now); err != nil {
			return fmt.Errorf("provisioning %s: %w", p.Space, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	return nil
}

// SetAccount is SetCustomer with customers.DefaultProduct for a new customer.
func (s *Store) SetAccount(ctx context.Context, customer, account string) error {
	_, err := s.SetCustomer(ctx, customers.CustomerUpdate{Customer: customer, Account: account, DefaultProduct: customers.DefaultProduct})
	return err
}

// SetCustomer sets the customer's account, creating the customer if needed.
// A customer's product is never changed: a record without one gets
// u.Product or u.DefaultProduct (customers.ErrNoProduct with neither), and a
// record with another product than u.Product is left as it is
// (customers.ErrProductMismatch).
func (s *Store) SetCustomer(ctx context.Context, u customers.CustomerUpdate) (customers.Record, error) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return customers.Record{}, fmt.Errorf("setting account of %s: %w", u.Customer, err)
	}
	defer tx.Rollback()
	fallback := u.Product
	if fallback == "" {
		fallback = u.DefaultProduct
	}
	if err := ensureProduct(ctx, tx, u.Customer, u.Product, fallback, now); err != nil {
		return customers.Record{}, err
	}
	var product string
	if err := tx.QueryRowContext(ctx, `
		UPDATE customer SET account = ?, updated_at = ? WHERE customer = ? RETURNING product`,
		u.Account, now, u.Customer).Scan(&product); err != nil {
		return customers.Record{}, fmt.Errorf("setting account of %s: %w", u.Customer, err)
	}
	if err := tx.Commit(); err != nil {
		return customers.Record{}, fmt.Errorf("setting account of %s: %w", u.Customer, err)
	}
	return customers.Record{Customer: u.Customer, Account: u.Account, Product: product}, nil
}

// ensureProduct leaves the customer's record with a product, inside tx: the
// one it has (which must be want, when want is set), else fallback, in a
// record created if there is none. Without a fallback a record lacking a
// product is an error.
func ensureProduct(ctx context.Context, tx *sql.Tx, customer, want, fallback, now string) error {
	var product string
	err := tx.QueryRowContext(ctx, `SELECT product FROM customer WHERE customer = ?`, customer).Scan(&product)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("looking up customer %s: %w", customer, err)
	}
	switch {
	case product != "" && want != "" && product != want:
		return fmt.Errorf("%w: %s has product %s, not %s", customers.ErrProductMismatch, customer, product, want)
	case product != "":
		return nil
	case fallback == "" && !exists:
		return fmt.Errorf("%w: %s has no customer record", customers.ErrNoProduct, customer)
	case fallback == "":
		return fmt.Errorf("%w: the record of %s has no product", customers.ErrNoProduct, customer)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO customer (customer, product, inserted_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (customer) DO UPDATE SET product = excluded.product, updated_at = excluded.updated_at`,
		customer, fallback, now, now); err != nil {
		return fmt.Errorf("creating customer %s: %w", customer, err)
	}
	return nil
}
