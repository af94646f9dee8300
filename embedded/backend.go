package embedded

import (
	"context"
	"time"

	"github.com/egressd/egressd/backend"
	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/revocations"
)

// OpenBackend is the default backend, registered for stores given no URL:
// every store in the data directory (backend.Config.DataDir), opened and
// migrated together on first use.
func OpenBackend(ctx context.Context, url string, cfg backend.Config) (backend.Backend, error) {
	return &dataDir{cfg: cfg}, nil
}

// dataDir is the data directory as a backend.Backend and backend.Journaled.
type dataDir struct {
	cfg backend.Config
	db  backend.Once[*DB]
}

func (d *dataDir) open(ctx context.Context) (*DB, error) {
	return d.db.Get(func() (*DB, error) {
		return Open(ctx, d.cfg.DataDir, Options{Visibility: d.cfg.Visibility, ReadOnly: d.cfg.ReadOnly})
	})
}

// Customers is not cached: provisioning from another process on the same
// directory takes effect at once.
func (d *dataDir) Customers(ctx context.Context) (customers.Store, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return db.Customers, nil
}

func (d *dataDir) Ledger(ctx context.Context) (billing.Ledger, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return db.Ledger, nil
}

// revocationCacheTTL: a batch of invocations under one delegation costs one
// lookup; a revocation through this process applies at once, one written by
// another process on the data directory within a second.
const revocationCacheTTL = time.Second

func (d *dataDir) Revocations(ctx context.Context) (revocations.Store, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return revocations.NewCached(db.Revocations, revocationCacheTTL, 0), nil
}

func (d *dataDir) Receipts(ctx context.Context) (receipts.Store, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return db.Receipts, nil
}

func (d *dataDir) Queue(ctx context.Context) (billing.Queue, error) {
	db, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	return db.Queue, nil
}

// Journal writes a message's events and receipts in one transaction of the
// journal file.
func (d *dataDir) Journal(ctx context.Context) (backend.Journal, error) {
	return d.open(ctx)
}

func (d *dataDir) Close() error {
	if db, ok := d.db.Opened(); ok {
		return db.Close()
	}
	return nil
}
