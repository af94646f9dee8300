package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
)

// Stores is the Source of a running egressd: its ledger, queue, customer
// accounts and receipts, whatever backend keeps them.
type Stores struct {
	Ledger   billing.Ledger
	Queue    billing.Queue
	Accounts customers.Store
	Receipts receipts.Store
	// Redriver sends problems again: the billing worker (or one built for
	// redrives when workers run as sidecars).
	Redriver interface {
		Redrive(ctx context.Context, f billing.RedriveFilter) (billing.RedriveResult, error)
	}
	// InvocationRate is invocations per second over the last minute; nil
	// shows zero.
	InvocationRate func() float64
	// LastReconcile reads the last `billing reconcile` outcome; nil, or
	// (nil, nil), when there was none.
	LastReconcile func() (*Reconcile, error)
}

var _ Source = (*Stores)(nil)

// maxProblemEntries bounds the entries one Problems page reads: a ledger
// with more problems than that shows the groups of the first ones.
const maxProblemEntries = 20_000

// recentEvents is how many of a customer's events its page lists.
const recentEvents = 50

// Overview gathers the figures of the front page.
func (s *Stores) Overview(ctx context.Context, now time.Time) (Overview, error) {
	now = now.UTC()
	var o Overview
	month := billing.Month(now)
	usage, err := s.Ledger.Usage(ctx, billing.UsageFilter{Month: month})
	if err != nil {
		return o, err
	}
	for _, u := range usage {
		o.EgressMonth += uint64(u.Bytes)
		o.EventsMonth += u.Events
	}
	days, err := s.daily(ctx, "", now)
	if err != nil {
		return o, err
	}
	o.Daily = days
	if last := days[len(days)-1]; last.Date == billing.Day(now) {
		o.EgressToday, o.EventsToday = last.Bytes, last.Events
	}
	if o.States, err = s.Ledger.Count(ctx, billing.UsageFilter{Month: month}); err != nil {
		return o, err
	}
	if o.QueueDepth, err = s.Queue.Depth(ctx); err != nil {
		return o, err
	}
	if dl, ok := s.Queue.(interface {
		DeadLetters(context.Context) (int, error)
	}); ok {
		if o.DeadLetters, err = dl.DeadLetters(ctx); err != nil {
			return o, err
		}
	}
	if o.BillingLag, err = s.billingLag(ctx, now); err != nil {
		return o, err
	}
	if s.InvocationRate != nil {
		o.InvocationsPerSecond = s.InvocationRate()
	}
	if s.LastReconcile != nil {
		if o.LastReconcile, err = s.LastReconcile(); err != nil {
			return o, err
		}
	}
	return o, nil
}

// billingLag is the age of the oldest pending entry: how far billing is
// behind what was recorded (events still on the queue are on top of it).
func (s *Stores) billingLag(ctx context.Context, now time.Time) (time.Duration, error) {
	var oldest time.Time
	err := s.entries(ctx, billing.EntryFilter{States: []billing.State{billing.Pending}}, func(e billing.Entry) {
		if oldest.IsZero() || e.RecordedAt.Before(oldest) {
			oldest = e.RecordedAt
		}
	})
	if err != nil || oldest.IsZero() {
		return 0, err
	}
	return max(now.Sub(oldest), 0), nil
}

// entries calls fn with the entries f selects, up to maxProblemEntries.
func (s *Stores) entries(ctx context.Context, f billing.EntryFilter, fn func(billing.Entry)) error {
	f.Limit = 1000
	for seen := 0; seen < maxProblemEntries; {
		page, err := s.Ledger.Entries(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page {
			fn(e)
		}
		if len(page) < f.Limit {
			return nil
		}
		seen += len(page)
		f.After = page[len(page)-1].Cause
	}
	return nil
}

// daily is the last 30 UTC days through now, every day present, for one
// customer or (customer "") all of them: the customers with usage in the
// months those days touch.
func (s *Stores) daily(ctx context.Context, customer string, now time.Time) ([]DayTotal, error) {
	to := now.Truncate(24*time.Hour).AddDate(0, 0, 1)
	from := to.AddDate(0, 0, -30)
	who := []string{customer}
	if customer == "" {
		who = nil
		for _, m := range []string{billing.Month(from), billing.Month(now)} {
			usage, err := s.Ledger.Usage(ctx, billing.UsageFilter{Month: m})
			if err != nil {
				return nil, err
			}
			for _, u := range usage {
				if !slices.Contains(who, u.Customer) {
					who = append(who, u.Customer)
				}
			}
		}
	}
	byDay := map[string]DayTotal{}
	for _, c := range who {
		days, err := s.Ledger.Daily(ctx, billing.DailyFilter{Customer: c, From: from, To: to})
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			t := byDay[d.Day]
			t.Bytes += uint64(d.Bytes)
			t.Events += d.Events
			byDay[d.Day] = t
		}
	}
	out := make([]DayTotal, 0, 30)
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		t := byDay[billing.Day(d)]
		t.Date = billing.Day(d)
		out = append(out, t)
	}
	return out, nil
}

// Customers lists this month's customers with their totals and states.
func (s *Stores) Customers(ctx context.Context, now time.Time) ([]CustomerRow, error) {
	usage, err := s.Ledger.Usage(ctx, billing.UsageFilter{Month: billing.Month(now)})
	if err != nil {
		return nil, err
	}
	var rows []CustomerRow
	for _, u := range usage {
		if len(rows) == 0 || rows[len(rows)-1].Customer != u.Customer {
			rows = append(rows, CustomerRow{Customer: u.Customer})
		}
		r := &rows[len(rows)-1]
		r.Bytes += uint64(u.Bytes)
		r.Events += u.Events
	}
	for i := range rows {
		if err := s.fill(ctx, &rows[i], now); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// fill adds a customer's account and this month's states.
func (s *Stores) fill(ctx context.Context, r *CustomerRow, now time.Time) error {
	account, err := s.Accounts.Account(ctx, r.Customer)
	if err != nil && !errors.Is(err, customers.ErrNotFound) {
		return err
	}
	r.Account = account
	r.States, err = s.Ledger.Count(ctx, billing.UsageFilter{Month: billing.Month(now), Customer: r.Customer})
	return err
}

// Customer is one customer's month: spaces, days, recent events.
func (s *Stores) Customer(ctx context.Context, customer string, now time.Time) (CustomerDetail, error) {
	var d CustomerDetail
	account, err := s.Accounts.Account(ctx, customer)
	if errors.Is(err, customers.ErrNotFound) {
		return d, ErrNotFound
	} else if err != nil {
		return d, err
	}
	d.Customer, d.Account = customer, account
	usage, err := s.Ledger.Usage(ctx, billing.UsageFilter{Month: billing.Month(now), Customer: customer})
	if err != nil {
		return d, err
	}
	for _, u := range usage {
		d.Bytes += uint64(u.Bytes)
		d.Events += u.Events
		d.Spaces = append(d.Spaces, SpaceTotal{Space: u.Space, Bytes: uint64(u.Bytes), Events: u.Events})
	}
	if d.States, err = s.Ledger.Count(ctx, billing.UsageFilter{Month: billing.Month(now), Customer: customer}); err != nil {
		return d, err
	}
	if d.Daily, err = s.daily(ctx, customer, now); err != nil {
		return d, err
	}
	// The ledger lists entries by cause; the latest served are kept.
	err = s.entries(ctx, billing.EntryFilter{Customer: customer}, func(e billing.Entry) {
		d.Recent = append(d.Recent, e)
		if len(d.Recent) > 4*recentEvents {
			d.Recent = latest(d.Recent, recentEvents)
		}
	})
	d.Recent = latest(d.Recent, recentEvents)
	return d, err
}

// latest keeps the n entries served last, newest first.
func latest(es []billing.Entry, n int) []billing.Entry {
	slices.SortFunc(es, func(a, b billing.Entry) int { return b.ServedAt.Compare(a.ServedAt) })
	return es[:min(n, len(es))]
}

// Problems groups the unbillable, failed and rejected entries by customer,
// state and reason.
func (s *Stores) Problems(ctx context.Context) ([]ProblemGroup, error) {
	groups := map[ProblemKey]*ProblemGroup{}
	err := s.entries(ctx, billing.EntryFilter{States: []billing.State{billing.Unbillable, billing.Failed, billing.Rejected}}, func(e billing.Entry) {
		k := ProblemKey{Customer: e.Customer, State: e.State, Reason: e.Reason}
		g, ok := groups[k]
		if !ok {
			g = &ProblemGroup{ProblemKey: k, Oldest: e.RecordedAt}
			groups[k] = g
		}
		g.Events++
		g.Bytes += uint64(e.Bytes)
		if e.RecordedAt.Before(g.Oldest) {
			g.Oldest = e.RecordedAt
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]ProblemGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b ProblemGroup) int {
		if c := strings.Compare(a.Customer, b.Customer); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.State), string(b.State)); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out, nil
}

// Redrive sends one group of problems again, as `billing redrive` does, and
// counts the events that left the group's state.
func (s *Stores) Redrive(ctx context.Context, g ProblemKey) (int, error) {
	if s.Redriver == nil {
		return 0, errors.New("no billing worker here to re-drive with")
	}
	res, err := s.Redriver.Redrive(ctx, billing.RedriveFilter{States: []billing.State{g.State}, Customer: g.Customer, Reason: g.Reason})
	if err != nil {
		return 0, err
	}
	if res.Errors > 0 {
		return 0, fmt.Errorf("%d events could not be re-driven (a store failed); see the log", res.Errors)
	}
	n := 0
	for state, events := range res.Settled {
		if state != g.State {
			n += events
		}
	}
	return n, nil
}

// Receipt fetches a stored receipt.
func (s *Stores) Receipt(ctx context.Context, cid string) (receipt.AnyReceipt, error) {
	r, err := s.Receipts.Get(ctx, cid)
	if errors.Is(err, receipts.ErrNotFound) {
		return nil, ErrNotFound
	}
	return r, err
}
