// Package backend says what a place that keeps egressd's data must offer, and
// opens the stores a process uses from a URL per store.
//
// A backend is a package of its own (embedded: the data directory; aws: S3,
// SQS and DynamoDB) with an Opener, registered under the URL schemes it
// serves in one place (cmd/egressd/backends.go). Adding a backend is that
// package plus one entry: nothing else chooses between backends.
package backend

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/revocations"
)

// Backend keeps some of egressd's stores. Each method opens its store on
// first use, checking what can be checked at start-up (tables exist, the
// bucket answers), and returns the same store afterwards; a store the
// backend does not keep is ErrNotKept.
type Backend interface {
	Customers(ctx context.Context) (customers.Store, error)
	Ledger(ctx context.Context) (billing.Ledger, error)
	Revocations(ctx context.Context) (revocations.Store, error)
	Receipts(ctx context.Context) (receipts.Store, error)
	Queue(ctx context.Context) (billing.Queue, error)
	// Close releases what the backend opened.
	Close() error
}

// Journaled is a Backend that can write a message's events and receipts in
// one transaction, so a crash never leaves one without the other. The server
// uses it when one such backend keeps both the queue and the receipts.
type Journaled interface {
	Journal(ctx context.Context) (Journal, error)
}

// Journal writes events and receipts in one transaction: both are durable
// when Record returns nil, neither when it fails (server.Journal).
type Journal interface {
	Record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error
}

// Locking is a Backend whose ledger is shared by workers on several
// machines: they take turns per Stripe account through its lock. Without it
// the worker's in-process lock is enough.
type Locking interface {
	CustomerLock(ctx context.Context) (billing.CustomerLock, error)
}

// ErrNotKept is returned for a store a backend does not keep (a queue asked
// of an S3 bucket).
var ErrNotKept = errors.New("this backend does not keep that store")

// Config is what every backend may need besides its URL.
type Config struct {
	// DataDir is the data directory: the embedded backend keeps its files
	// there, and every process keeps its service key there.
	DataDir string
	// ReadOnly opens the data directory's files for reading only, as they
	// are: for reports on a backup or on a directory this user may not
	// write. Nothing is created or migrated.
	ReadOnly bool
	// Visibility is how long a received queue message stays hidden; zero is
	// the queue's default.
	Visibility time.Duration
	// CustomerTTL caches found customers in front of a remote store; zero
	// caches nothing.
	CustomerTTL time.Duration
	// Log receives what the stores report; nil discards it.
	Log *slog.Logger
}

// Opener opens the backend a URL names, without touching the network: a
// mistyped URL is refused here, before anything else can go wrong.
type Opener func(ctx context.Context, url string, cfg Config) (Backend, error)
