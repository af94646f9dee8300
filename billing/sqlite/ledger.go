package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/sqlitedb"
)

// The ledger's tables (ledger, batches, monthly) are laid out, and brought
// forward, by package embedded's migrations of ledger.db: this file only
// reads and writes them.

// isMember is the condition that the ledger row is a member of the batch
// whose ID is the parameter p, written so that SQLite looks the first
// member up by cause and the others in ledger_batch_members.
func isMember(p string) string {
	return `(ledger.cause = ` + p + ` OR (ledger.batch = ` + p + ` AND ledger.batch <> ledger.cause)) AND ledger.batch = ` + p
}

// maxMembers caps a batch's members below any rule's cap, so that settling
// one batch rewrites a bounded number of rows in one transaction.
const maxMembers = 1000

const (
	entryColumns = `cause, space, customer, resource, bytes, served_at, state, reason, recorded_at, updated_at, batch`
	batchColumns = `id, customer, ts, bytes, events, resend, state, reason, recorded_at, updated_at, account`
)

// Ledger is the embedded billing.Ledger, in the data directory's ledger.db.
type Ledger struct {
	db *sql.DB
	// writes shares one commit (one fsync) among concurrent writers.
	writes *sqlitedb.Committer
	// stmts are prepared once: preparing costs more than running them.
	stmts ledgerStmts
	now   func() time.Time
}

// ledgerStmts are the statements Record, Settle and Reject run per event or
// per batch.
type ledgerStmts struct {
	known, insertEntry, insertBatch, addTotal, readTotal, forceTotal, addDay,
	settle, reject, syncMembers, batchExists, batch *sql.Stmt
}

var _ billing.Ledger = (*Ledger)(nil)

// NewLedger keeps the ledger in db, which must hold its tables already
// (package embedded opens and migrates ledger.db); writes is the committer
// every write to db goes through. The caller closes writes, then db.
func NewLedger(db *sql.DB, writes *sqlitedb.Committer) (*Ledger, error) {
	l := &Ledger{db: db, writes: writes, now: time.Now}
	if err := l.prepare(); err != nil {
		return nil, err
	}
	// Every write goes through the committer's one connection: give it a
	// cache (16 MB, beside the 1 MB each reader has) that holds the pages
	// every transaction rewrites, such as the tail of each customer's
	// batches and monthly rows. With 1 MB, a Record of 1,000 customers'
	// events read most of them back from the file.
	if err := l.writes.Do(func(tx *sql.Tx) error {
		_, err := tx.Exec(`PRAGMA cache_size = -16384`)
		return err
	}); err != nil {
		return nil, fmt.Errorf("sizing the ledger's write cache: %w", err)
	}
	return l, nil
}

func (l *Ledger) prepare() error {
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&l.stmts.addDay, addDaySQL},
		{&l.stmts.known, `SELECT ` + entryColumns + ` FROM ledger WHERE cause IN (SELECT value FROM json_each(?))`},
		{&l.stmts.insertEntry, `INSERT INTO ledger (cause, space, customer, resource, bytes, served_at, month, state, reason, recorded_at, updated_at, batch)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&l.stmts.insertBatch, `INSERT INTO batches (` + batchColumns + `) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, '')`},
		// SQLite turns an integer sum past 2^63-1 into an inexact REAL,
		// which no report of the month could read. The WHERE clause skips
		// the update (no row changes) when the sum would pass it, or when
		// the total is not an integer already (a REAL an older egressd left).
		{&l.stmts.addTotal, `INSERT INTO monthly (customer, month, space, bytes, events) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (customer, month, space) DO UPDATE SET bytes = monthly.bytes + excluded.bytes, events = monthly.events + excluded.events
			WHERE typeof(monthly.bytes) = 'integer' AND monthly.bytes <= ` + strconv.FormatInt(math.MaxInt64, 10) + ` - excluded.bytes`},
		{&l.stmts.readTotal, `SELECT bytes FROM monthly WHERE customer = ? AND month = ? AND space = ?`},
		// For bytes already checked to fit (or 0, into a REAL left as it is).
		{&l.stmts.forceTotal, `INSERT INTO monthly (customer, month, space, bytes, events) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (customer, month, space) DO UPDATE SET bytes = monthly.bytes + excluded.bytes, events = monthly.events + excluded.events`},
		// The rules of billing.Ledger.Settle: never below the stored resend,
		// never out of reported, out of rejected only for a higher resend.
		// An empty account keeps the stored one: a settlement that never
		// reached the sink says nothing about where the batch went before.
		{&l.stmts.settle, `UPDATE batches SET state = ?, reason = ?, resend = ?, updated_at = ?, account = coalesce(nullif(?, ''), account)
			WHERE id = ? AND resend <= ? AND state <> '` + string(billing.Reported) + `' AND (state <> '` + string(billing.Rejected) + `' OR resend < ?)`},
		{&l.stmts.reject, `UPDATE batches SET state = '` + string(billing.Rejected) + `', reason = ?, resend = ?, updated_at = ?
			WHERE id = ? AND resend <= ?`},
		// Members take their batch's state and reason, whether the batch
		// just changed or a settle interrupted elsewhere left them behind.
		{&l.stmts.syncMembers, `UPDATE ledger SET state = b.state, reason = b.reason, updated_at = ?1
			FROM batches b WHERE b.id = ?2 AND ` + isMember("?2") + ` AND (ledger.state <> b.state OR ledger.reason <> b.reason)`},
		{&l.stmts.batchExists, `SELECT 1 FROM batches WHERE id = ?`},
		{&l.stmts.batch, `SELECT ` + batchColumns + ` FROM batches WHERE id = ?`},
	} {
		stmt, err := l.db.Prepare(s.sql)
		if err != nil {
			return fmt.Errorf("preparing the ledger's statements: %w", err)
		}
		*s.stmt = stmt
	}
	return nil
}

// Record records the events of evs not yet in the ledger, in batches by
// rule, all in one transaction shared with concurrent callers (group
// commit): a call of a thousand events costs one fsync.
func (l *Ledger) Record(ctx context.Context, evs []billing.Event, rule billing.BatchRule) ([]billing.Entry, []billing.Batch, error) {
	if len(evs) == 0 {
		return nil, nil, nil
	}
	if rule.Window != 0 {
		if err := billing.CheckWindow(rule.Window); err != nil {
			return nil, nil, fmt.Errorf("recording events: %w", err)
		}
	}
	for _, ev := range evs {
		if err := ev.Validate(); err != nil {
			return nil, nil, fmt.Errorf("recording events: %w", err)
		}
	}
	var (
		entries []billing.Entry
		batches []billing.Batch
	)
	err := l.writes.Do(func(tx *sql.Tx) error {
		var err error
		entries, batches, err = l.record(tx, evs, rule, time.UnixMilli(l.now().UnixMilli()).UTC())
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("recording %d events: %w", len(evs), err)
	}
	return entries, batches, nil
}

// record is Record inside tx. The committer may run it again, so it keeps
// nothing outside tx between runs.
func (l *Ledger) record(tx *sql.Tx, evs []billing.Event, rule billing.BatchRule, now time.Time) ([]billing.Entry, []billing.Batch, error) {
	got, err := l.known(tx, evs)
	if err != nil {
		return nil, nil, fmt.Errorf("reading known events: %w", err)
	}
	var fresh []billing.Event
	for _, ev := range evs {
		if _, ok := got[ev.Cause]; ok {
			continue
		}
		// As stored, to the millisecond: what Record returns now is what it
		// and Batch return later.
		ev.ServedAt = time.UnixMilli(ev.ServedAt.UnixMilli()).UTC()
		fresh = append(fresh, ev)
		got[ev.Cause] = billing.Entry{} // a cause twice in evs is one event
	}
	refused, err := l.count(tx, fresh)
	if err != nil {
		return nil, nil, fmt.Errorf("counting them in the monthly totals: %w", err)
	}
	if err := l.countDays(tx, fresh, refused); err != nil {
		return nil, nil, err
	}
	accepted := fresh
	if len(refused) > 0 {
		accepted = make([]billing.Event, 0, len(fresh))
		for _, ev := range fresh {
			if reason, ok := refused[ev.Cause]; ok {
				// New, but settled: the worker acknowledges it without billing it.
				b := billing.Batch{ID: ev.Cause, Customer: ev.Customer, Timestamp: ev.ServedAt, Bytes: ev.Bytes, Events: 1,
					State: billing.Failed, Reason: reason, RecordedAt: now, UpdatedAt: now}
				entry, err := l.insert(tx, b, []billing.Event{ev})
				if err != nil {
					return nil, nil, err
				}
				entry.Event = ev
				got[ev.Cause] = entry
				continue
			}
			accepted = append(accepted, ev)
		}
	}
	formed := billing.FormBatches(accepted, rule, maxMembers)
	batches := make([]billing.Batch, len(formed))
	for i, fb := range formed {
		fb.RecordedAt, fb.UpdatedAt = now, now
		entry, err := l.insert(tx, fb.Batch, fb.Members)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range fb.Members {
			entry.Event = m
			got[m.Cause] = entry
		}
		batches[i] = fb.Batch
	}
	entries := make([]billing.Entry, len(evs))
	for i, ev := range evs {
		entries[i] = got[ev.Cause]
	}
	return entries, batches, nil
}

// known returns the stored entries of the causes of evs, in one query.
func (l *Ledger) known(tx *sql.Tx, evs []billing.Event) (map[string]billing.Entry, error) {
	causes := make([]string, len(evs))
	for i, ev := range evs {
		causes[i] = ev.Cause
	}
	list, err := json.Marshal(causes)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Stmt(l.stmts.known).Query(string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[string]billing.Entry, len(evs))
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		got[e.Cause] = e
	}
	return got, rows.Err()
}

// insert writes batch b and its members with b's state and reason, and
// returns the entry every member has but for its event.
func (l *Ledger) insert(tx *sql.Tx, b billing.Batch, members []billing.Event) (billing.Entry, error) {
	now := b.RecordedAt.UnixMilli()
	if _, err := tx.Stmt(l.stmts.insertBatch).Exec(b.ID, b.Customer, b.Timestamp.UnixMilli(), b.Bytes, b.Events, b.State, b.Reason, now, now); err != nil {
		return billing.Entry{}, fmt.Errorf("inserting batch %s: %w", b.ID, err)
	}
	stmt := tx.Stmt(l.stmts.insertEntry)
	for _, ev := range members {
		if _, err := stmt.Exec(ev.Cause, ev.Space, ev.Customer, ev.Resource, ev.Bytes, ev.ServedAt.UnixMilli(), billing.Month(ev.ServedAt),
			b.State, b.Reason, now, now, b.ID); err != nil {
			return billing.Entry{}, fmt.Errorf("inserting %s: %w", ev.Cause, err)
		}
	}
	return billing.Entry{Batch: b.ID, State: b.State, Reason: b.Reason, RecordedAt: b.RecordedAt, UpdatedAt: b.UpdatedAt}, nil
}

// totalKey is one monthly total.
type totalKey struct{ customer, month, space string }

// count adds the new events evs to their monthly totals, one write per
// total, and returns the reasons for those refused: an event whose bytes
// would take its total past 2^63-1, checked in order, is left out of the
// bytes but counted as an event of the month, so that the month's events
// still add up to its ledger entries. Billing it would charge for bytes the
// totals never show; an operator sees it with its reason, and can redrive
// it once the data is understood.
func (l *Ledger) count(tx *sql.Tx, evs []billing.Event) (map[string]string, error) {
	type total struct {
		key      totalKey
		bytes    int64
		overflow bool // the new bytes alone pass 2^63-1
		events   []billing.Event
	}
	index := make(map[totalKey]int)
	var totals []total
	for _, ev := range evs {
		k := totalKey{ev.Customer, billing.Month(ev.ServedAt), ev.Space}
		i, ok := index[k]
		if !ok {
			i = len(totals)
			index[k] = i
			totals = append(totals, total{key: k})
		}
		t := &totals[i]
		t.overflow = t.overflow || ev.Bytes > math.MaxInt64-t.bytes
		if !t.overflow {
			t.bytes += ev.Bytes
		}
		t.events = append(t.events, ev)
	}
	var refused map[string]string
	add := tx.Stmt(l.stmts.addTotal)
	for _, t := range totals {
		k := t.key
		if !t.overflow {
			res, err := add.Exec(k.customer, k.month, k.space, t.bytes, len(t.events))
			if err != nil {
				return nil, err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return nil, err
			}
			if n > 0 {
				continue // all fit
			}
		}
		// Some do not fit: walk them in order against the stored total.
		var stored any = int64(0)
		err := tx.Stmt(l.stmts.readTotal).QueryRow(k.customer, k.month, k.space).Scan(&stored)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		sum, isInt := stored.(int64)
		var added int64
		for _, ev := range t.events {
			if !isInt || ev.Bytes > math.MaxInt64-sum {
				if refused == nil {
					refused = make(map[string]string)
				}
				held := any(sum)
				if !isInt {
					held = stored
				}
				refused[ev.Cause] = fmt.Sprintf("%s: the %s total of space %s holds %v bytes, and %d more would pass %d",
					billing.ReasonTotalOverflow, k.month, k.space, held, ev.Bytes, int64(math.MaxInt64))
				continue
			}
			sum += ev.Bytes
			added += ev.Bytes
		}
		if _, err := tx.Stmt(l.stmts.forceTotal).Exec(k.customer, k.month, k.space, added, len(t.events)); err != nil {
			return nil, err
		}
	}
	return refused, nil
}

// Batch returns the batch with id.
func (l *Ledger) Batch(ctx context.Context, id string) (billing.Batch, error) {
	b, err := scanBatch(l.stmts.batch.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Batch{}, fmt.Errorf("reading batch %s: %w", id, billing.ErrNotFound)
	}
	if err != nil {
		return billing.Batch{}, fmt.Errorf("reading batch %s: %w", id, err)
	}
	return b, nil
}

// Settle applies the settlements in one transaction, storing each batch's
// Account when it is set and the settlement applies. A settlement of a
// batch never recorded changes nothing and is named in the error, which
// wraps ErrNotFound; the others still apply.
func (l *Ledger) Settle(ctx context.Context, settlements ...billing.Settlement) error {
	for _, s := range settlements {
		if _, err := billing.ParseState(string(s.State)); err != nil {
			return fmt.Errorf("settling batch %s: %w", s.Batch.ID, err)
		}
	}
	var missing []string
	err := l.writes.Do(func(tx *sql.Tx) error {
		missing = missing[:0]
		now := l.now().UnixMilli()
		settle := tx.Stmt(l.stmts.settle)
		for _, s := range settlements {
			b := s.Batch
			res, err := settle.Exec(s.State, s.Reason, b.Resend, now, b.Account, b.ID, b.Resend, b.Resend)
			if err != nil {
				return fmt.Errorf("settling batch %s: %w", b.ID, err)
			}
			found, err := l.syncMembers(tx, res, b.ID, now)
			if err != nil {
				return fmt.Errorf("settling batch %s: %w", b.ID, err)
			}
			if !found {
				missing = append(missing, b.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("settling batches %s: %w", strings.Join(missing, ", "), billing.ErrNotFound)
	}
	return nil
}

// Reject moves the batch id to rejected, keeping the account it was sent
// to, unless it was settled under a higher resend.
func (l *Ledger) Reject(ctx context.Context, id string, resend int, reason string) error {
	found := false
	err := l.writes.Do(func(tx *sql.Tx) error {
		now := l.now().UnixMilli()
		res, err := tx.Stmt(l.stmts.reject).Exec(reason, resend, now, id, resend)
		if err != nil {
			return err
		}
		found, err = l.syncMembers(tx, res, id, now)
		return err
	})
	if err == nil && !found {
		err = billing.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("rejecting batch %s: %w", id, err)
	}
	return nil
}

// syncMembers brings the members of batch id into line with it after res,
// the update of the batch, and says whether the batch exists. Members that
// already agree are left alone, so this costs one indexed look-up when
// nothing is out of line.
func (l *Ledger) syncMembers(tx *sql.Tx, res sql.Result, id string, now int64) (bool, error) {
	changed, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	synced, err := tx.Stmt(l.stmts.syncMembers).Exec(now, id)
	if err != nil {
		return false, fmt.Errorf("updating its members: %w", err)
	}
	resynced, err := synced.RowsAffected()
	if err != nil {
		return false, err
	}
	if changed > 0 || resynced > 0 {
		return true, nil
	}
	// Nothing changed: either too late to apply (fine) or never recorded.
	var one int
	err = tx.Stmt(l.stmts.batchExists).QueryRow(id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
