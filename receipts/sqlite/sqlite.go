// Package sqlite is the embedded receipt store: receipts as CAR archives in
// the receipt table of journal.db (package embedded opens and migrates the
// file), found by invocation CID or by receipt CID.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/internal/sqlitedb"
	"github.com/egressd/egressd/receipts"
)

// Store is the embedded receipts.Store.
type Store struct {
	db     *sql.DB
	writes *sqlitedb.Committer
	// Statements are prepared once: preparing costs more than running them.
	insert, get *sql.Stmt
}

var _ receipts.Store = (*Store)(nil)

// New keeps receipts in db, which must hold the receipt table already;
// writes groups its inserts with the other writes to db (the event queue
// shares the file, see package embedded). The caller closes writes, then db.
func New(db *sql.DB, writes *sqlitedb.Committer) (*Store, error) {
	s := &Store{db: db, writes: writes}
	var err error
	if s.insert, err = db.Prepare(`INSERT INTO receipt (invocation, receipt, archive) VALUES (?, ?, ?) ON CONFLICT (invocation) DO NOTHING`); err != nil {
		return nil, fmt.Errorf("preparing receipt store: %w", err)
	}
	if s.get, err = db.Prepare(`SELECT archive FROM receipt WHERE invocation = ? UNION ALL SELECT archive FROM receipt WHERE receipt = ? LIMIT 1`); err != nil {
		return nil, fmt.Errorf("preparing receipt store: %w", err)
	}
	return s, nil
}

// Put stores the receipts in one transaction; an invocation that already has
// a receipt keeps the first one.
func (s *Store) Put(ctx context.Context, rcpts ...receipt.AnyReceipt) error {
	if len(rcpts) == 0 {
		return nil
	}
	step, err := s.PutStep(rcpts)
	if err != nil {
		return err
	}
	// Receipts of concurrent requests share one transaction (group commit).
	if err := s.writes.Do(step); err != nil {
		return fmt.Errorf("storing receipts: %w", err)
	}
	return nil
}

// PutStep archives rcpts now and returns the write that inserts them, for a
// caller that commits it in one transaction with other writes to the same
// file.
func (s *Store) PutStep(rcpts []receipt.AnyReceipt) (func(*sql.Tx) error, error) {
	type row struct {
		inv, rcpt string
		archive   []byte
	}
	rows := make([]row, 0, len(rcpts))
	for _, r := range rcpts {
		archive, err := receipts.Archive(r)
		if err != nil {
			return nil, fmt.Errorf("archiving receipt: %w", err)
		}
		inv, err := receipts.Invocation(r)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{inv, r.Root().Link().String(), archive})
	}
	return func(tx *sql.Tx) error {
		stmt := tx.Stmt(s.insert)
		for _, r := range rows {
			if _, err := stmt.Exec(r.inv, r.rcpt, r.archive); err != nil {
				return fmt.Errorf("receipt for %s: %w", r.inv, err)
			}
		}
		return nil
	}, nil
}

// Get finds a receipt by invocation CID, then by receipt CID.
func (s *Store) Get(ctx context.Context, cid string) (receipt.AnyReceipt, error) {
	var archive []byte
	err := s.get.QueryRowContext(ctx, cid, cid).Scan(&archive)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, receipts.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up receipt %s: %w", cid, err)
	}
	rcpt, err := receipt.Extract(archive)
	if err != nil {
		return nil, fmt.Errorf("decoding stored receipt %s: %w", cid, err)
	}
	return rcpt, nil
}
