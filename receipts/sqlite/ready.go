package sqlite

import (
	"context"

	"github.com/egressd/egressd/internal/sqlitedb"
)

// Ready says whether the receipts' file can take a write now (/readyz): a
// full disk fails it before a request does.
func (s *Store) Ready(ctx context.Context) error { return sqlitedb.Probe(ctx, s.db) }
