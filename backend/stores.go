package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/revocations"
)

// Registry maps a URL scheme to the backend that serves it. The empty scheme
// is the default, used for a store given no URL.
type Registry map[string]Opener

// Location is where one store is kept: a URL (empty for the default
// backend), and the flag that set it, so errors name what to fix.
type Location struct {
	Flag string
	URL  string
}

// Locations says where each store is kept.
type Locations struct {
	Customers, Ledger, Revocations, Receipts, Queue Location
}

// Stores are the stores of one process. Each is opened on first use from
// the backend its location names; a backend named by several stores is
// opened once.
type Stores struct {
	loc      Locations
	backends map[string]Backend
	order    []Backend
}

// Open opens, without touching the network, the backend of every location,
// so that a mistyped URL is named before any store is used.
func (r Registry) Open(ctx context.Context, loc Locations, cfg Config) (_ *Stores, err error) {
	s := &Stores{loc: loc, backends: map[string]Backend{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, l := range []Location{loc.Customers, loc.Ledger, loc.Revocations, loc.Receipts, loc.Queue} {
		if _, ok := s.backends[l.URL]; ok {
			continue
		}
		open, err := r.opener(l)
		if err != nil {
			return nil, err
		}
		b, err := open(ctx, l.URL, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Flag, err)
		}
		s.backends[l.URL] = b
		s.order = append(s.order, b)
	}
	return s, nil
}

// opener finds the backend of a location by its URL's scheme.
func (r Registry) opener(l Location) (Opener, error) {
	scheme := ""
	if l.URL != "" {
		u, err := url.Parse(l.URL)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("%s: %q is not a URL (%s)", l.Flag, l.URL, r.schemes())
		}
		scheme = u.Scheme
	}
	open, ok := r[scheme]
	if !ok {
		return nil, fmt.Errorf("%s: no backend serves %s:// URLs (%s)", l.Flag, scheme, r.schemes())
	}
	return open, nil
}

func (r Registry) schemes() string {
	var names []string
	for s := range r {
		if s != "" {
			names = append(names, s+"://")
		}
	}
	slices.Sort(names)
	return "known: " + strings.Join(names, ", ")
}

// kept opens one store from the backend of its location, naming the flag
// when that fails.
func kept[T any](ctx context.Context, s *Stores, l Location, open func(Backend, context.Context) (T, error)) (T, error) {
	v, err := open(s.backends[l.URL], ctx)
	if errors.Is(err, ErrNotKept) {
		return v, fmt.Errorf("%s: %s keeps no such store: %w", l.Flag, l.URL, err)
	}
	if err != nil {
		return v, fmt.Errorf("%s: %w", l.Flag, err)
	}
	return v, nil
}

// Customers opens the customer store.
func (s *Stores) Customers(ctx context.Context) (customers.Store, error) {
	return kept(ctx, s, s.loc.Customers, Backend.Customers)
}

// Ledger opens the billing ledger.
func (s *Stores) Ledger(ctx context.Context) (billing.Ledger, error) {
	return kept(ctx, s, s.loc.Ledger, Backend.Ledger)
}

// Revocations opens the revocation store.
func (s *Stores) Revocations(ctx context.Context) (revocations.Store, error) {
	return kept(ctx, s, s.loc.Revocations, Backend.Revocations)
}

// Receipts opens the receipt store.
func (s *Stores) Receipts(ctx context.Context) (receipts.Store, error) {
	return kept(ctx, s, s.loc.Receipts, Backend.Receipts)
}

// Queue opens the event queue.
func (s *Stores) Queue(ctx context.Context) (billing.Queue, error) {
	return kept(ctx, s, s.loc.Queue, Backend.Queue)
}

// Journal is the one-transaction writer of events and receipts when one
// backend that offers it keeps both; nil otherwise (the server then writes
// receipts first, then events).
func (s *Stores) Journal(ctx context.Context) (Journal, error) {
	if s.loc.Queue.URL != s.loc.Receipts.URL {
		return nil, nil
	}
	j, ok := s.backends[s.loc.Queue.URL].(Journaled)
	if !ok {
		return nil, nil
	}
	return kept(ctx, s, s.loc.Queue, func(Backend, context.Context) (Journal, error) { return j.Journal(ctx) })
}

// CustomerLock is the ledger backend's lock shared between machines, or nil
// when the ledger has none (one machine: the worker locks in process).
func (s *Stores) CustomerLock(ctx context.Context) (billing.CustomerLock, error) {
	l, ok := s.backends[s.loc.Ledger.URL].(Locking)
	if !ok {
		return nil, nil
	}
	return kept(ctx, s, s.loc.Ledger, func(Backend, context.Context) (billing.CustomerLock, error) { return l.CustomerLock(ctx) })
}

// Close closes every backend, the last opened first.
func (s *Stores) Close() error {
	var errs []error
	for i := len(s.order) - 1; i >= 0; i-- {
		errs = append(errs, s.order[i].Close())
	}
	return errors.Join(errs...)
}
