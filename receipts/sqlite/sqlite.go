// Package sqlite is the embedded receipt store: receipts as CAR archives in
// dataDir/receipts.db, found by invocation CID or by receipt CID.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/internal/sqlitedb"
	"github.com/egressd/egressd/receipts"
)

const schema = `
CREATE TABLE IF NOT EXISTS receipt (
	invocation TEXT PRIMARY KEY, -- the task CID the receipt is for
	receipt    TEXT NOT NULL,    -- the receipt's own CID
	archive    BLOB NOT NULL     -- the receipt, its invocation and proofs, as a CAR
);
CREATE INDEX IF NOT EXISTS receipt_by_cid ON receipt (receipt);
`

// Store is the embedded receipts.Store.
type Store struct {
	db     *sql.DB
	writes *sqlitedb.Committer
	// Statements are prepared once: preparing costs more than running them.
	insert, get *sql.Stmt
}

var _ receipts.Store = (*Store)(nil)

// Open opens dataDir/receipts.db.
func Open(dataDir string) (*Store, error) {
	db, err := sqlitedb.Open(filepath.Join(dataDir, "receipts.db"), schema)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, writes: sqlitedb.NewCommitter(db)}
	if s.insert, err = db.Prepare(`INSERT INTO receipt (invocation, receipt, archive) VALUES (?, ?, ?) ON CONFLICT (invocation) DO NOTHING`); err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing receipt store: %w", err)
	}
	if s.get, err = db.Prepare(`SELECT archive FROM receipt WHERE invocation = ? UNION ALL SELECT archive FROM receipt WHERE receipt = ? LIMIT 1`); err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing receipt store: %w", err)
	}
	return s, nil
}

// Close finishes pending writes and releases the database.
func (s *Store) Close() error {
	s.writes.Close()
	return s.db.Close()
}

// Put stores the receipts in one transaction; an invocation that already has
// a receipt keeps the first one.
func (s *Store) Put(ctx context.Context, rcpts ...receipt.AnyReceipt) error {
	if len(rcpts) == 0 {
		return nil
	}
	type row struct {
		inv, rcpt string
		archive   []byte
	}
	rows := make([]row, 0, len(rcpts))
	for _, r := range rcpts {
		archive, err := receipts.Archive(r)
		if err != nil {
			return fmt.Errorf("archiving receipt: %w", err)
		}
		rows = append(rows, row{r.Ran().Link().String(), r.Root().Link().String(), archive})
	}
	// Receipts of concurrent requests share one transaction (group commit).
	err := s.writes.Do(func(tx *sql.Tx) error {
		stmt := tx.Stmt(s.insert)
		for _, r := range rows {
			if _, err := stmt.Exec(r.inv, r.rcpt, r.archive); err != nil {
				return fmt.Errorf("receipt for %s: %w", r.inv, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing receipts: %w", err)
	}
	return nil
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
