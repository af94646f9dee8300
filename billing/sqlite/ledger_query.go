package sqlite

// The ledger's reads: listings of batches and entries, and the monthly
// totals, for the worker's redrive, reconcile and the usage commands.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
)

// Batches calls fn with the batches of f's customer whose timestamp is in
// [From, To), a page at a time, so that no read stays open while fn runs. A
// zero From or To leaves that end open.
func (l *Ledger) Batches(ctx context.Context, f billing.BatchFilter, fn func(billing.Batch) error) error {
	if f.Customer == "" {
		return errors.New("listing batches: no customer given")
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !f.From.IsZero() {
		from = f.From.UnixMilli()
	}
	if !f.To.IsZero() {
		to = f.To.UnixMilli()
	}
	const page = 500
	afterTS, afterID := from, ""
	for {
		rows, err := l.db.QueryContext(ctx, `SELECT `+batchColumns+` FROM batches
			WHERE customer = ? AND ts >= ? AND ts < ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?`,
			f.Customer, from, to, afterTS, afterID, page)
		if err != nil {
			return fmt.Errorf("listing batches: %w", err)
		}
		var bs []billing.Batch
		for rows.Next() {
			b, err := scanBatch(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("listing batches: %w", err)
			}
			bs = append(bs, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("listing batches: %w", err)
		}
		for _, b := range bs {
			if err := fn(b); err != nil {
				return err
			}
		}
		if len(bs) < page {
			return nil
		}
		last := bs[len(bs)-1]
		afterTS, afterID = last.Timestamp.UnixMilli(), last.ID
	}
}

// Entries lists entries matching f, ordered by cause.
func (l *Ledger) Entries(ctx context.Context, f billing.EntryFilter) ([]billing.Entry, error) {
	var (
		where []string
		args  []any
	)
	if len(f.States) > 0 {
		where = append(where, `state IN (`+strings.TrimSuffix(strings.Repeat("?,", len(f.States)), ",")+`)`)
		for _, s := range f.States {
			args = append(args, s)
		}
		if !slices.Contains(f.States, billing.Reported) {
			// Redundant, but SQLite uses the partial index ledger_unbilled
			// only when a query names its condition.
			where = append(where, `state <> '`+string(billing.Reported)+`'`)
		}
	}
	if f.Customer != "" {
		where = append(where, `customer = ?`)
		args = append(args, f.Customer)
	}
	if f.Batch != "" {
		where = append(where, isMember("?"))
		args = append(args, f.Batch, f.Batch, f.Batch)
	}
	if f.After != "" {
		where = append(where, `cause > ?`)
		args = append(args, f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + entryColumns + ` FROM ledger`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY cause LIMIT ?`
	args = append(args, limit)

	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing ledger entries: %w", err)
	}
	defer rows.Close()
	var entries []billing.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("listing ledger entries: %w", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing ledger entries: %w", err)
	}
	return entries, nil
}

// Usage returns the monthly totals of f's month, by customer then space.
func (l *Ledger) Usage(ctx context.Context, f billing.UsageFilter) ([]billing.Usage, error) {
	q := `SELECT customer, space, month, bytes, events FROM monthly WHERE month = ?`
	args := []any{f.Month}
	if f.Customer != "" {
		q += ` AND customer = ?`
		args = append(args, f.Customer)
	}
	q += ` ORDER BY customer, space`
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading monthly usage: %w", err)
	}
	defer rows.Close()
	var out []billing.Usage
	for rows.Next() {
		var (
			u             billing.Usage
			bytes, events any
		)
		if err := rows.Scan(&u.Customer, &u.Space, &u.Month, &bytes, &events); err != nil {
			return nil, fmt.Errorf("reading monthly usage: %w", err)
		}
		// The columns have INTEGER affinity: anything but an int64 is a sum
		// that passed 2^63-1 before Record guarded against it, which SQLite
		// stored as an inexact REAL. Name the row rather than fail obscurely.
		var bytesOK, eventsOK bool
		u.Bytes, bytesOK = bytes.(int64)
		u.Events, eventsOK = events.(int64)
		if !bytesOK || !eventsOK {
			return nil, fmt.Errorf("reading monthly usage: the %s total of %s in space %s is %v bytes in %v events, not integers: "+
				"an egressd without the overflow guard let it pass %d; the month's events are in the ledger (egressd billing list)",
				u.Month, u.Customer, u.Space, bytes, events, int64(math.MaxInt64))
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading monthly usage: %w", err)
	}
	return out, nil
}

// Count returns the number of entries in each state for f's month.
func (l *Ledger) Count(ctx context.Context, f billing.UsageFilter) (map[billing.State]int64, error) {
	q := `SELECT state, count(*) FROM ledger WHERE month = ?`
	args := []any{f.Month}
	if f.Customer != "" {
		q += ` AND customer = ?`
		args = append(args, f.Customer)
	}
	q += ` GROUP BY state`
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("counting ledger states: %w", err)
	}
	defer rows.Close()
	counts := make(map[billing.State]int64, len(billing.States))
	for _, s := range billing.States {
		counts[s] = 0
	}
	for rows.Next() {
		var (
			s string
			n int64
		)
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("counting ledger states: %w", err)
		}
		counts[billing.State(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting ledger states: %w", err)
	}
	return counts, nil
}

// scanEntry reads one row selected with entryColumns.
func scanEntry(row interface{ Scan(...any) error }) (billing.Entry, error) {
	var (
		e                             billing.Entry
		state                         string
		servedAt, recorded, updatedAt int64
	)
	if err := row.Scan(&e.Cause, &e.Space, &e.Customer, &e.Resource, &e.Bytes, &servedAt, &state, &e.Reason, &recorded, &updatedAt, &e.Batch); err != nil {
		return billing.Entry{}, err
	}
	e.State = billing.State(state)
	e.ServedAt = time.UnixMilli(servedAt).UTC()
	e.RecordedAt = time.UnixMilli(recorded).UTC()
	e.UpdatedAt = time.UnixMilli(updatedAt).UTC()
	return e, nil
}

// scanBatch reads one row selected with batchColumns.
func scanBatch(row interface{ Scan(...any) error }) (billing.Batch, error) {
	var (
		b                       billing.Batch
		state                   string
		ts, recorded, updatedAt int64
	)
	if err := row.Scan(&b.ID, &b.Customer, &ts, &b.Bytes, &b.Events, &b.Resend, &state, &b.Reason, &recorded, &updatedAt, &b.Account); err != nil {
		return billing.Batch{}, err
	}
	b.State = billing.State(state)
	b.Timestamp = time.UnixMilli(ts).UTC()
	b.RecordedAt = time.UnixMilli(recorded).UTC()
	b.UpdatedAt = time.UnixMilli(updatedAt).UTC()
	return b, nil
}
