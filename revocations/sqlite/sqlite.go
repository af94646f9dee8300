// Package sqlite is the embedded revocation store: the revocations of
// ucan/revoke in the data directory's revocations.db (package embedded opens
// and migrates it), one row per revoked delegation and revoker, like the
// rows of Storacha's revocation table.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/egressd/egressd/revocations"
)

// Store is the embedded revocations.Store.
type Store struct {
	db *sql.DB
	// lookup runs on every invocation: prepared once, with the CIDs passed
	// as one JSON array so the statement does not depend on their number.
	lookup *sql.Stmt
}

var _ revocations.Store = (*Store)(nil)

// New keeps revocations in db, which must hold the revocation table already.
// Every write commits with full fsync (see sqlitedb.Open): a revocation
// acknowledged to its caller survives kill -9.
func New(db *sql.DB) (*Store, error) {
	lookup, err := db.Prepare(`SELECT revoke, scope, cause FROM revocation
		WHERE revoke IN (SELECT value FROM json_each(?))`)
	if err != nil {
		return nil, fmt.Errorf("preparing revocation store: %w", err)
	}
	return &Store{db: db, lookup: lookup}, nil
}

// Revoke records r, keeping the first cause when the scope revoked the
// delegation before.
func (s *Store) Revoke(ctx context.Context, r revocations.Revocation) error {
	if r.Delegation == "" || r.Scope == "" || r.Cause == "" {
		return errors.New("recording a revocation: delegation, scope and cause are required")
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO revocation (revoke, scope, cause, inserted_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (revoke, scope) DO NOTHING`,
		r.Delegation, r.Scope, r.Cause, now); err != nil {
		return fmt.Errorf("recording the revocation of %s by %s: %w", r.Delegation, r.Scope, err)
	}
	return nil
}

// Revocations returns the revocations of any of the delegations.
func (s *Store) Revocations(ctx context.Context, delegations []string) ([]revocations.Revocation, error) {
	if len(delegations) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(delegations)
	if err != nil {
		return nil, err
	}
	rows, err := s.lookup.QueryContext(ctx, string(list))
	if err != nil {
		return nil, fmt.Errorf("looking up revocations: %w", err)
	}
	defer rows.Close()
	var found []revocations.Revocation
	for rows.Next() {
		var r revocations.Revocation
		if err := rows.Scan(&r.Delegation, &r.Scope, &r.Cause); err != nil {
			return nil, fmt.Errorf("looking up revocations: %w", err)
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up revocations: %w", err)
	}
	return found, nil
}
