// Package embedded opens the journal of the embedded backend: the event queue
// and the receipt store kept in one SQLite file under the data directory, so
// that the events of a message and their receipts are written in one
// transaction. One commit (and one fsync) instead of two, and a crash can
// never leave a receipt without its event, nor an event without its receipt.
package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/internal/sqlitedb"
	receiptsqlite "github.com/egressd/egressd/receipts/sqlite"
)

// File is the journal's file name in the data directory.
const File = "journal.db"

// Files of earlier versions, imported into the journal when found.
const (
	oldQueueFile    = "queue.db"
	oldReceiptsFile = "receipts.db"
)

// Journal is the embedded event queue and receipt store on one file.
type Journal struct {
	Queue    *billingsqlite.Queue
	Receipts *receiptsqlite.Store
	db       *sql.DB
	writes   *sqlitedb.Committer
}

// Open opens (creating if needed) dataDir/journal.db. The server, a worker
// sidecar and CLI commands may have it open at once.
func Open(ctx context.Context, dataDir string, opts billingsqlite.QueueOptions) (*Journal, error) {
	db, err := sqlitedb.Open(filepath.Join(dataDir, File), "")
	if err != nil {
		return nil, err
	}
	j := &Journal{db: db, writes: sqlitedb.NewCommitter(db)}
	if j.Queue, err = billingsqlite.NewQueue(db, j.writes, opts); err != nil {
		j.Close()
		return nil, err
	}
	if j.Receipts, err = receiptsqlite.New(db, j.writes); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.Queue.ImportFile(ctx, filepath.Join(dataDir, oldQueueFile)); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.Receipts.ImportFile(ctx, filepath.Join(dataDir, oldReceiptsFile)); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// Record enqueues the events and stores the receipts in one transaction,
// shared with concurrent callers (group commit): both are durable when it
// returns nil, neither when it fails.
func (j *Journal) Record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error {
	if len(events) == 0 && len(rcpts) == 0 {
		return nil
	}
	enqueue, err := j.Queue.EnqueueStep(events)
	if err != nil {
		return err
	}
	put, err := j.Receipts.PutStep(rcpts)
	if err != nil {
		return err
	}
	err = j.writes.Do(func(tx *sql.Tx) error {
		if err := enqueue(tx); err != nil {
			return err
		}
		return put(tx)
	})
	if err != nil {
		return fmt.Errorf("recording %d events and %d receipts: %w", len(events), len(rcpts), err)
	}
	return nil
}

// Close finishes pending writes and releases the file.
func (j *Journal) Close() error {
	j.writes.Close()
	return j.db.Close()
}
