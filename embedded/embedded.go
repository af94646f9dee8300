// Package embedded owns the data directory of the embedded backend: it opens
// every SQLite file there, brings each to the layout this binary reads with
// numbered migrations embedded in the binary, and hands the stores (customer,
// ledger, revocation, queue, receipt) the opened files. No store creates or
// alters a table; this package is the one place the layout is written down.
//
// The files, and what each holds:
//
//	customers.db    consumer, customer                 (customers/sqlite)
//	ledger.db       ledger, batches, monthly           (billing/sqlite Ledger)
//	revocations.db  revocation                         (revocations/sqlite)
//	journal.db      queue, dead_letter, receipt        (billing/sqlite Queue, receipts/sqlite)
//
// Each file's version is its PRAGMA user_version: the number of migrations
// applied. Migration 1 of each adopts the files of every egressd from before
// versions (user_version 0), whatever columns they lacked. Open applies the
// missing ones in one transaction per file, under the write lock, so the
// server, a worker sidecar and CLI commands may open one directory at once;
// and it refuses a file a newer egressd migrated (*VersionError).
//
// To change a file's layout, say to add a table to ledger.db:
//
//  1. write migrations/ledger/0002_daily_totals.sql (the next number; plain
//     CREATE TABLE, no IF NOT EXISTS: it runs exactly once per file);
//  2. append sqlStep("ledger/0002_daily_totals.sql") to ledgerFile's steps in
//     migrations.go;
//  3. use the table from the store. TestMigrationFiles checks every SQL file
//     is a step in the place its number says.
//
// Never edit a migration that has shipped: a file that ran it will not run it
// again. A step that must look at the file first (does it have this column?)
// is a Go function, as migration 1 of each file is.
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/internal/sqlitedb"
	receiptsqlite "github.com/egressd/egressd/receipts/sqlite"
	revocationsqlite "github.com/egressd/egressd/revocations/sqlite"
)

// Options tunes the embedded backend; zero values take the defaults.
type Options struct {
	// Visibility is how long a received message stays leased (default 60 s).
	Visibility time.Duration
	// Poll is how often a waiting Receive looks again (default 50 ms); tests
	// and benchmarks lower it so that a worker notices events sooner.
	Poll time.Duration
	// ReadOnly opens the files as they are, for reading only (SQLite
	// mode=ro): for reports on a backup, or on a directory this user may
	// not write. Nothing is created or migrated, a missing file is an error,
	// and so is a file an older egressd wrote (*StaleError). Every write
	// through the stores fails.
	ReadOnly bool
}

// DB is the data directory, opened: every store of the embedded backend.
type DB struct {
	Customers   *customersqlite.Store
	Ledger      *billingsqlite.Ledger
	Revocations *revocationsqlite.Store
	Queue       *billingsqlite.Queue
	Receipts    *receiptsqlite.Store

	// journalWrites commits the queue's and the receipts' writes, together
	// when Record has both; ledgerWrites the ledger's.
	journalWrites, ledgerWrites *sqlitedb.Committer
	// files are the open files, closed after the committers.
	files     []*sql.DB
	readOnly  bool
	closeOnce sync.Once
	closeErr  error
}

// Open opens every file of dataDir (creating the directory and the files
// when missing) and migrates each to the version this binary knows; with
// opts.ReadOnly it only opens them (see Options).
func Open(ctx context.Context, dataDir string, opts Options) (_ *DB, err error) {
	db := &DB{readOnly: opts.ReadOnly}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	customers, err := db.open(ctx, dataDir, customersFile)
	if err != nil {
		return nil, err
	}
	if db.Customers, err = customersqlite.New(customers); err != nil {
		return nil, err
	}

	ledger, err := db.open(ctx, dataDir, ledgerFile)
	if err != nil {
		return nil, err
	}
	db.ledgerWrites = sqlitedb.NewCommitter(ledger)
	if db.Ledger, err = billingsqlite.NewLedger(ledger, db.ledgerWrites); err != nil {
		return nil, err
	}

	revocations, err := db.open(ctx, dataDir, revocationsFile)
	if err != nil {
		return nil, err
	}
	if db.Revocations, err = revocationsqlite.New(revocations); err != nil {
		return nil, err
	}

	journal, err := db.open(ctx, dataDir, journalFile)
	if err != nil {
		return nil, err
	}
	db.journalWrites = sqlitedb.NewCommitter(journal)
	if db.Queue, err = billingsqlite.NewQueue(journal, db.journalWrites, billingsqlite.QueueOptions{Visibility: opts.Visibility, Poll: opts.Poll}); err != nil {
		return nil, err
	}
	if db.Receipts, err = receiptsqlite.New(journal, db.journalWrites); err != nil {
		return nil, err
	}
	return db, nil
}

// open opens one file and migrates it.
func (db *DB) open(ctx context.Context, dataDir string, f file) (*sql.DB, error) {
	if db.readOnly {
		return db.openReadOnly(ctx, dataDir, f)
	}
	path := filepath.Join(dataDir, f.name)
	conn, err := sqlitedb.Open(path)
	if err != nil {
		return nil, err
	}
	db.files = append(db.files, conn)
	if err := migrate(ctx, conn, path, dataDir, f); err != nil {
		return nil, err
	}
	return conn, nil
}

// Record enqueues the events and stores the receipts in one transaction of
// journal.db, shared with concurrent callers (group commit): both are
// durable when it returns nil, neither when it fails. One commit (and one
// fsync) instead of two, and a crash never leaves a receipt without its
// event, nor an event without its receipt.
func (db *DB) Record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error {
	if len(events) == 0 && len(rcpts) == 0 {
		return nil
	}
	enqueue, err := db.Queue.EnqueueStep(events)
	if err != nil {
		return err
	}
	put, err := db.Receipts.PutStep(rcpts)
	if err != nil {
		return err
	}
	err = db.journalWrites.Do(func(tx *sql.Tx) error {
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

// Close finishes the writes in progress, then releases every file. Calling
// it again returns the first answer.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		for _, w := range []*sqlitedb.Committer{db.journalWrites, db.ledgerWrites} {
			if w != nil {
				w.Close()
			}
		}
		var errs []error
		for _, f := range db.files {
			errs = append(errs, f.Close())
		}
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}
