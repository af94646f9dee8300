package sqlite

import (
	"context"

	"github.com/egressd/egressd/internal/sqlitedb"
)

// Ready says whether the customers' file can be reached and written now
// (/readyz; provision and customer set write it while serve runs).
func (s *Store) Ready(ctx context.Context) error { return sqlitedb.Probe(ctx, s.db) }
