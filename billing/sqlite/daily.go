package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/egressd/egressd/billing"
)

// countDays adds the new events to their daily totals, in the transaction
// that counts them in the monthly ones: an event refused there (refused
// holds its cause) counts without its bytes here too, so a day never holds
// more than its month.
func (l *Ledger) countDays(tx *sql.Tx, evs []billing.Event, refused map[string]string) error {
	type dayKey struct{ customer, day, space string }
	type sum struct{ bytes, events int64 }
	sums := make(map[dayKey]*sum)
	var order []dayKey
	for _, ev := range evs {
		k := dayKey{ev.Customer, billing.Day(ev.ServedAt), ev.Space}
		s, ok := sums[k]
		if !ok {
			s = &sum{}
			sums[k] = s
			order = append(order, k)
		}
		s.events++
		if _, no := refused[ev.Cause]; !no {
			s.bytes += ev.Bytes
		}
	}
	add := tx.Stmt(l.stmts.addDay)
	for _, k := range order {
		if _, err := add.Exec(k.customer, k.day, k.space, sums[k].bytes, sums[k].events); err != nil {
			return fmt.Errorf("counting them in the daily totals: %w", err)
		}
	}
	return nil
}

// addDaySQL adds to one daily total.
const addDaySQL = `INSERT INTO daily (customer, day, space, bytes, events) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (customer, day, space) DO UPDATE SET bytes = daily.bytes + excluded.bytes, events = daily.events + excluded.events`

// Daily returns the customer's daily totals of f's days, by space then day:
// one range of the primary key for every space, or of daily_space per
// listed space.
func (l *Ledger) Daily(ctx context.Context, f billing.DailyFilter) ([]billing.DailyUsage, error) {
	if f.Customer == "" {
		return nil, fmt.Errorf("daily totals: a customer is required")
	}
	q := `SELECT space, day, bytes, events FROM daily WHERE customer = ? AND day >= ? AND day < ?`
	args := []any{f.Customer, billing.Day(f.From), billing.Day(f.To)}
	if len(f.Spaces) > 0 {
		spaces, err := json.Marshal(f.Spaces)
		if err != nil {
			return nil, err
		}
		q += ` AND space IN (SELECT value FROM json_each(?))`
		args = append(args, string(spaces))
	}
	rows, err := l.db.QueryContext(ctx, q+` ORDER BY space, day`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading daily totals: %w", err)
	}
	defer rows.Close()
	var out []billing.DailyUsage
	for rows.Next() {
		d := billing.DailyUsage{Customer: f.Customer}
		if err := rows.Scan(&d.Space, &d.Day, &d.Bytes, &d.Events); err != nil {
			return nil, fmt.Errorf("reading daily totals: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
