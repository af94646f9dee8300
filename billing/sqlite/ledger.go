package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/sqlitedb"
)

// The ledger and monthly tables follow Storacha's egress-traffic-events and
// egress-traffic-monthly tables, keyed for this service's questions: the
// ledger by cause (the dedup key), the totals by customer, month and space.
const ledgerSchema = `
CREATE TABLE IF NOT EXISTS ledger (
	cause       TEXT PRIMARY KEY,  -- the invocation CID: one row per billable event, ever
	space       TEXT NOT NULL,
	customer    TEXT NOT NULL,
	resource    TEXT NOT NULL,
	bytes       INTEGER NOT NULL,
	served_at   INTEGER NOT NULL,  -- unix ms
	month       TEXT NOT NULL,     -- YYYY-MM of served_at, UTC
	state       TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	recorded_at INTEGER NOT NULL,  -- unix ms
	updated_at  INTEGER NOT NULL,  -- unix ms
	resend      INTEGER NOT NULL DEFAULT 0  -- billing.Event.Resend
);
CREATE INDEX IF NOT EXISTS ledger_state ON ledger (state, customer, cause);
CREATE INDEX IF NOT EXISTS ledger_month ON ledger (month, customer, state);
CREATE TABLE IF NOT EXISTS monthly (
	customer TEXT NOT NULL,
	month    TEXT NOT NULL,
	space    TEXT NOT NULL,
	bytes    INTEGER NOT NULL,
	events   INTEGER NOT NULL,
	PRIMARY KEY (customer, month, space)
);
`

// Ledger is the embedded billing.Ledger in dataDir/ledger.db.
type Ledger struct {
	db *sql.DB
	// writes shares one commit (one fsync) among concurrent writers.
	writes *sqlitedb.Committer
	now    func() time.Time
}

var _ billing.Ledger = (*Ledger)(nil)

// OpenLedger opens (creating if needed) dataDir/ledger.db.
func OpenLedger(dataDir string) (*Ledger, error) {
	db, err := sqlitedb.Open(filepath.Join(dataDir, "ledger.db"), ledgerSchema)
	if err != nil {
		return nil, err
	}
	if err := addResendColumn(db); err != nil {
		db.Close()
		return nil, err
	}
	return &Ledger{db: db, writes: sqlitedb.NewCommitter(db), now: time.Now}, nil
}

// Close waits for writes in progress and releases the database.
func (l *Ledger) Close() error {
	l.writes.Close()
	return l.db.Close()
}

// addResendColumn gives a ledger an older egressd created the resend
// column, which CREATE TABLE IF NOT EXISTS leaves out.
func addResendColumn(db *sql.DB) error {
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('ledger') WHERE name = 'resend'`).Scan(&n); err != nil {
		return fmt.Errorf("reading the ledger's columns: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.Exec(`ALTER TABLE ledger ADD COLUMN resend INTEGER NOT NULL DEFAULT 0`); err != nil {
		return fmt.Errorf("adding the ledger's resend column: %w", err)
	}
	return nil
}

const entryColumns = `cause, space, customer, resource, bytes, served_at, state, reason, recorded_at, updated_at, resend`

// Record inserts ev as pending and counts it in the monthly totals in one
// transaction, or returns the existing entry untouched. An event whose bytes
// would take its monthly total past 2^63-1 is inserted as failed instead,
// its bytes left out of the total: new, but settled, so the worker
// acknowledges it without billing it.
func (l *Ledger) Record(ctx context.Context, ev billing.Event) (billing.Entry, bool, error) {
	if err := ev.Validate(); err != nil {
		return billing.Entry{}, false, fmt.Errorf("recording event: %w", err)
	}
	var (
		entry billing.Entry
		isNew bool
	)
	err := l.writes.Do(func(tx *sql.Tx) error {
		var err error
		entry, isNew, err = record(tx, ev, l.now())
		return err
	})
	if err != nil {
		return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, err)
	}
	return entry, isNew, nil
}

// record is Record inside tx.
func record(tx *sql.Tx, ev billing.Event, now time.Time) (billing.Entry, bool, error) {
	month := billing.Month(ev.ServedAt)
	res, err := tx.Exec(`
		INSERT INTO ledger (cause, space, customer, resource, bytes, served_at, month, state, recorded_at, updated_at, resend)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cause) DO NOTHING`,
		ev.Cause, ev.Space, ev.Customer, ev.Resource, ev.Bytes, ev.ServedAt.UnixMilli(), month, billing.Pending, now.UnixMilli(), now.UnixMilli(), ev.Resend)
	if err != nil {
		return billing.Entry{}, false, err
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return billing.Entry{}, false, err
	}
	if inserted == 0 {
		// A duplicate: the totals already hold it, so only read.
		entry, err := scanEntry(tx.QueryRow(`SELECT `+entryColumns+` FROM ledger WHERE cause = ?`, ev.Cause))
		if err != nil {
			return billing.Entry{}, false, fmt.Errorf("reading the existing entry: %w", err)
		}
		return entry, false, nil
	}
	// SQLite turns an integer sum past 2^63-1 into an inexact REAL, which
	// no report of the month could read. The WHERE clause skips the update
	// (no row changes) when the sum would pass it, or when the total is not
	// an integer already (a REAL an older egressd left).
	res, err = tx.Exec(`
		INSERT INTO monthly (customer, month, space, bytes, events) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (customer, month, space) DO UPDATE SET bytes = monthly.bytes + excluded.bytes, events = monthly.events + 1
		WHERE typeof(monthly.bytes) = 'integer' AND monthly.bytes <= ? - excluded.bytes`,
		ev.Customer, month, ev.Space, ev.Bytes, int64(math.MaxInt64))
	if err != nil {
		return billing.Entry{}, false, fmt.Errorf("counting it in the monthly totals: %w", err)
	}
	counted, err := res.RowsAffected()
	if err != nil {
		return billing.Entry{}, false, fmt.Errorf("counting it in the monthly totals: %w", err)
	}
	t := time.UnixMilli(now.UnixMilli()).UTC()
	if counted == 0 {
		reason, err := refuse(tx, ev, month, now)
		if err != nil {
			return billing.Entry{}, false, fmt.Errorf("refusing it in the monthly totals: %w", err)
		}
		// New, but settled: the worker acknowledges it without billing it.
		return billing.Entry{Event: ev, State: billing.Failed, Reason: reason, RecordedAt: t, UpdatedAt: t}, true, nil
	}
	return billing.Entry{Event: ev, State: billing.Pending, RecordedAt: t, UpdatedAt: t}, true, nil
}

// refuse settles the just-inserted entry of ev as failed because its month's
// total cannot take its bytes, and counts it as an event of the month without
// its bytes, so that the month's events still add up to its ledger entries.
// Billing it would charge for bytes the totals never show; an operator sees
// it with its reason, and can redrive it once the data is understood.
func refuse(tx *sql.Tx, ev billing.Event, month string, now time.Time) (string, error) {
	var total any
	err := tx.QueryRow(`SELECT bytes FROM monthly WHERE customer = ? AND month = ? AND space = ?`, ev.Customer, month, ev.Space).Scan(&total)
	if err != nil {
		return "", err
	}
	reason := fmt.Sprintf("%s: the %s total of space %s holds %v bytes, and %d more would pass %d",
		billing.ReasonTotalOverflow, month, ev.Space, total, ev.Bytes, int64(math.MaxInt64))
	if _, err := tx.Exec(`UPDATE monthly SET events = events + 1 WHERE customer = ? AND month = ? AND space = ?`,
		ev.Customer, month, ev.Space); err != nil {
		return "", err
	}
	if _, err := tx.Exec(`UPDATE ledger SET state = ?, reason = ?, updated_at = ? WHERE cause = ?`,
		billing.Failed, reason, now.UnixMilli(), ev.Cause); err != nil {
		return "", err
	}
	return reason, nil
}

// Mark sets the entry's state, reason and resend unless it is reported,
// rejected under the same or a later resend, or marked under a later
// resend. The ledger is keyed by cause alone; the rest of ev is not needed.
func (l *Ledger) Mark(ctx context.Context, ev billing.Event, state billing.State, reason string) error {
	if _, err := billing.ParseState(string(state)); err != nil {
		return err
	}
	return l.update(ev.Cause, ev.Resend, state, reason,
		`resend <= ? AND (state NOT IN (?, ?) OR (state = ? AND resend < ?))`,
		ev.Resend, billing.Reported, billing.Rejected, billing.Rejected, ev.Resend)
}

// Reject sets the entry of cause to rejected with reason and resend,
// whatever its state, unless it was marked under a later resend.
func (l *Ledger) Reject(ctx context.Context, cause string, resend int, reason string) error {
	return l.update(cause, resend, billing.Rejected, reason, `resend <= ?`, resend)
}

// update sets the state, reason and resend of the entry of cause where
// condition (with its args) holds. Nothing changing is fine if the entry
// exists (the update came too late to apply); ErrNotFound if it does not.
func (l *Ledger) update(cause string, resend int, state billing.State, reason, condition string, args ...any) error {
	err := l.writes.Do(func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE ledger SET state = ?, reason = ?, updated_at = ?, resend = ? WHERE cause = ? AND `+condition,
			append([]any{state, reason, l.now().UnixMilli(), resend, cause}, args...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		// Nothing changed: either too late to apply (fine) or never recorded.
		var one int
		err = tx.QueryRow(`SELECT 1 FROM ledger WHERE cause = ?`, cause).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return billing.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("marking %s %s: %w", cause, state, err)
	}
	return nil
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
	}
	if f.Customer != "" {
		where = append(where, `customer = ?`)
		args = append(args, f.Customer)
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
	if err := row.Scan(&e.Cause, &e.Space, &e.Customer, &e.Resource, &e.Bytes, &servedAt, &state, &e.Reason, &recorded, &updatedAt, &e.Resend); err != nil {
		return billing.Entry{}, err
	}
	e.State = billing.State(state)
	e.ServedAt = time.UnixMilli(servedAt).UTC()
	e.RecordedAt = time.UnixMilli(recorded).UTC()
	e.UpdatedAt = time.UnixMilli(updatedAt).UTC()
	return e, nil
}
