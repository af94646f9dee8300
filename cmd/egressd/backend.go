package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/egressd/egressd/backend"
	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/revocations"
	"github.com/egressd/egressd/server"
)

// backendFlags choose where egressd keeps its data: everything under
// --data-dir (the embedded backend), or, store by store, S3 (--receipts),
// SQS (--queue) and DynamoDB (--tables: customers, the ledger, the monthly
// totals and the revocations).
type backendFlags struct {
	dataDir                 string
	receipts, queue, tables string
	// storacha says the --tables are Storacha's own deployment: their
	// schemas are checked, never created or changed, and what egressd
	// writes to them is what Storacha's code writes (see the README).
	storacha bool
	// queueVisibility is the queue's lease on a received message; commands
	// that run a worker set it from --queue-visibility, zero is the default.
	queueVisibility time.Duration
	// customerTTL caches found customers in front of DynamoDB (serve sets
	// it from --customer-ttl); zero caches nothing.
	customerTTL time.Duration
	// log receives what the stores report (the SQS queue's undecodable
	// messages); nil discards it.
	log *slog.Logger

	// mustExist refuses a missing data directory instead of creating it:
	// every command but serve, worker and provision (and bench, which
	// provisions) sets it (see dataDirRule).
	mustExist bool
	// readOnly opens the data directory's files read-only: the reports
	// (usage, billing list) set it, so they can read a backup or a
	// directory they may not write, and never migrate one.
	readOnly bool
	// opensQueue and opensReceipts say the command registered --queue and
	// --receipts, and so opens those stores.
	opensQueue, opensReceipts bool
}

// dataDirRule is the data-directory rule, as --help and errors state it.
const dataDirRule = "serve, worker and provision create one; every other command reads the one they made"

// registerDataDir registers --data-dir alone, for commands that only read
// the service key.
func (b *backendFlags) registerDataDir(fs *flag.FlagSet) {
	fs.StringVar(&b.dataDir, "data-dir", "./data", "directory of the embedded backend (SQLite files) and of the service key; "+dataDirRule)
}

// register registers --data-dir and every AWS backend flag, for commands
// that open every store. One set of EGRESSD_RECEIPTS, EGRESSD_QUEUE and
// EGRESSD_TABLES variables configures them all; a command without one of
// these flags ignores its variable.
func (b *backendFlags) register(fs *flag.FlagSet) {
	b.registerTables(fs)
	b.registerQueue(fs)
	b.registerReceipts(fs)
}

// registerTables registers --data-dir, --tables and --storacha: all a
// command needs that opens only customers, the ledger and revocations
// (help lists no flag the command would ignore).
func (b *backendFlags) registerTables(fs *flag.FlagSet) {
	b.registerDataDir(fs)
	fs.BoolVar(&b.storacha, "storacha", false, "the --tables are Storacha's deployment: check their schemas and never change them, write only rows Storacha's code writes, meter event gateway-egress-traffic, did:web provider (env EGRESSD_STORACHA)")
	fs.StringVar(&b.tables, "tables", "", "keep customers, the billing ledger, monthly totals and revocations in DynamoDB: dynamodb://[TABLE_PREFIX][?consumer=&subscription=&customer=&revocation=&events=&monthly=&ledger=] (dynamodb://<stage>-w3infra- with --storacha runs on Storacha's tables); default: in the data directory")
}

// registerQueue registers --queue; the command opens the queue.
func (b *backendFlags) registerQueue(fs *flag.FlagSet) {
	b.opensQueue = true
	fs.StringVar(&b.queue, "queue", "", "carry events on SQS: sqs://QUEUE_NAME[?dlq=NAME] (dead-letter queue QUEUE_NAME-dlq); default: in the data directory")
}

// registerReceipts registers --receipts; the command opens the receipts.
func (b *backendFlags) registerReceipts(fs *flag.FlagSet) {
	b.opensReceipts = true
	fs.StringVar(&b.receipts, "receipts", "", "keep receipts in S3: s3://BUCKET[/PREFIX][?path-style=true|false]; default: in the data directory")
}

// ignoreStores accepts --queue and --receipts, when the command does not
// open those stores, and ignores them: one set of backend flags (or
// EGRESSD_* variables) then still works for every command, as scripts pass
// it. --help does not list them (ignoredFlag).
func (b *backendFlags) ignoreStores(fs *flag.FlagSet) {
	if !b.opensQueue {
		fs.Var(ignoredFlag{}, "queue", "accepted and ignored: this command does not use the queue")
	}
	if !b.opensReceipts {
		fs.Var(ignoredFlag{}, "receipts", "accepted and ignored: this command does not use the receipts")
	}
}

// ignoredFlag is a flag a command accepts and does nothing with.
type ignoredFlag struct{}

func (ignoredFlag) String() string   { return "" }
func (ignoredFlag) Set(string) error { return nil }

// checkDataDir refuses a data directory that is not there, for a command
// that does not create one and keeps a store in it: `usage` on a mistyped
// path would otherwise create an empty directory and report zero bytes,
// which reads as "nothing was served".
func (f *backendFlags) checkDataDir() error {
	embedded := f.tables == "" || (f.opensQueue && f.queue == "") || (f.opensReceipts && f.receipts == "")
	if !f.mustExist || !embedded {
		return nil
	}
	info, err := os.Stat(f.dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no data directory at %s: check --data-dir (%s)", f.dataDir, dataDirRule)
	case err != nil:
		return fmt.Errorf("data directory %s: %w", f.dataDir, err)
	case !info.IsDir():
		return fmt.Errorf("--data-dir %s is not a directory", f.dataDir)
	}
	return nil
}

// describe names where each store lives, for the start-up log.
func (b *backendFlags) describe() []any {
	or := func(url string) string {
		if url == "" {
			return "embedded"
		}
		return url
	}
	return []any{"data_dir", b.dataDir, "receipts", or(b.receipts), "queue", or(b.queue), "tables", or(b.tables)}
}

// locations says which backend keeps each store: the one --tables names
// keeps customers, the ledger and revocations; each flag left empty means
// the data directory.
func (f *backendFlags) locations() backend.Locations {
	tables := backend.Location{Flag: "--tables", URL: f.tables}
	return backend.Locations{
		Customers:   tables,
		Ledger:      tables,
		Revocations: tables,
		Receipts:    backend.Location{Flag: "--receipts", URL: f.receipts},
		Queue:       backend.Location{Flag: "--queue", URL: f.queue},
	}
}

func (f *backendFlags) config() backend.Config {
	return backend.Config{DataDir: f.dataDir, ReadOnly: f.readOnly, Visibility: f.queueVisibility, CustomerTTL: f.customerTTL, Log: f.log}
}

// stores is the set of stores one process uses.
type stores struct {
	Customers customers.Store
	Queue     billing.Queue
	Ledger    billing.Ledger
	Receipts  receipts.Store
	// Journal records events and receipts in one transaction when one
	// backend keeps both (the data directory does); nil otherwise.
	Journal server.Journal
	// CustomerLock keeps workers on several machines from calling Stripe
	// for one account at once: the ledger backend's, nil when it has none.
	CustomerLock billing.CustomerLock
	// Revocations holds the delegations revoked with ucan/revoke.
	Revocations revocations.Store
	backends    *backend.Stores
}

// Close closes every backend, the last opened first (so the SQS queue sends
// what it holds before anything else goes).
func (s *stores) Close() error { return s.backends.Close() }

// customerStore opens only the customer store (provision, customer set).
func (f *backendFlags) customerStore(ctx context.Context) (customers.Store, func() error, error) {
	// After Open, which refuses a mistyped URL: that is the better answer.
	bs, err := backends.Open(ctx, f.locations(), f.config())
	if err != nil {
		return nil, nil, err
	}
	if err := f.checkDataDir(); err != nil {
		bs.Close()
		return nil, nil, err
	}
	s, err := bs.Customers(ctx)
	if err != nil {
		bs.Close()
		return nil, nil, err
	}
	return s, bs.Close, nil
}

// open opens every store the command registered flags for.
func (f *backendFlags) open(ctx context.Context) (_ *stores, err error) {
	bs, err := backends.Open(ctx, f.locations(), f.config())
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			bs.Close()
		}
	}()
	// After Open, which refuses a mistyped URL: that is the better answer.
	if err := f.checkDataDir(); err != nil {
		return nil, err
	}
	s := &stores{backends: bs}
	if s.Customers, err = bs.Customers(ctx); err != nil {
		return nil, err
	}
	if s.Ledger, err = bs.Ledger(ctx); err != nil {
		return nil, err
	}
	if s.CustomerLock, err = bs.CustomerLock(ctx); err != nil {
		return nil, err
	}
	if s.Revocations, err = bs.Revocations(ctx); err != nil {
		return nil, err
	}
	if f.opensReceipts {
		if s.Receipts, err = bs.Receipts(ctx); err != nil {
			return nil, err
		}
	}
	if f.opensQueue {
		if s.Queue, err = bs.Queue(ctx); err != nil {
			return nil, err
		}
	}
	if f.opensReceipts && f.opensQueue {
		if s.Journal, err = bs.Journal(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}
