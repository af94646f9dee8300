package sqlite

import (
	"context"

	"github.com/egressd/egressd/internal/sqlitedb"
)

// Ready says whether the queue's file can take a write now (the server's
// and worker's /readyz): a full disk fails it before a request does.
func (q *Queue) Ready(ctx context.Context) error { return sqlitedb.Probe(ctx, q.db) }

// Ready says whether the ledger's file can take a write now (the worker's
// /readyz).
func (l *Ledger) Ready(ctx context.Context) error { return sqlitedb.Probe(ctx, l.db) }
