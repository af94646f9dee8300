package main

import (
	"errors"
	"flag"
	"time"

	"github.com/egressd/egressd/billing"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/customers"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/receipts"
	receiptsqlite "github.com/egressd/egressd/receipts/sqlite"
)

// backendFlags choose where egressd keeps its data.
type backendFlags struct {
	dataDir string
	// queueVisibility is the queue's lease on a received message; commands
	// that run a worker set it from --queue-visibility, zero is the default.
	queueVisibility time.Duration
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.dataDir, "data-dir", "./data", "directory of the embedded backend (SQLite files and the service key)")
}

// backend is the set of stores one process uses.
type backend struct {
	Customers customers.Store
	Queue     billing.Queue
	Ledger    billing.Ledger
	Receipts  receipts.Store
	closers   []func() error
}

// Close closes every store that was opened.
func (b *backend) Close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// openCustomers opens only the customer store (provision, customer set).
func (f *backendFlags) openCustomers() (customers.Store, func() error, error) {
	s, err := customersqlite.Open(f.dataDir)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// open opens every store.
func (f *backendFlags) open() (*backend, error) {
	b := &backend{}
	cs, closeCustomers, err := f.openCustomers()
	if err != nil {
		return nil, err
	}
	b.Customers = cs
	b.closers = append(b.closers, closeCustomers)

	q, err := billingsqlite.OpenQueue(f.dataDir, billingsqlite.QueueOptions{Visibility: f.queueVisibility})
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Queue = q
	b.closers = append(b.closers, q.Close)

	l, err := billingsqlite.OpenLedger(f.dataDir)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Ledger = l
	b.closers = append(b.closers, l.Close)

	rs, err := receiptsqlite.Open(f.dataDir)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Receipts = rs
	b.closers = append(b.closers, rs.Close)
	return b, nil
}
