package sqlite

import (
	"context"

	"github.com/egressd/egressd/internal/sqlitedb"
)

// Ready says whether the revocations' file can take a write now (/readyz:
// ucan/revoke writes it).
func (s *Store) Ready(ctx context.Context) error { return sqlitedb.Probe(ctx, s.db) }
