// Package sqlite is the embedded billing backend: the durable event queue (in
// journal.db, beside the receipts) and the ledger (in ledger.db), on SQLite
// files that package embedded opens and migrates. Nothing here creates or
// alters a table.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/sqlitedb"
)

// QueueOptions tunes the embedded queue; zero values take the defaults.
type QueueOptions struct {
	// Visibility is how long a received message stays leased (default 60 s).
	Visibility time.Duration
	// MaxReceives moves a message to the dead-letter table after this many
	// deliveries without an ack (default 10), like an SQS redrive policy.
	MaxReceives int
	// Poll is how often Receive looks again while waiting (default 50 ms).
	Poll time.Duration
}

// Queue is the durable event queue of the embedded backend.
type Queue struct {
	db     *sql.DB
	writes *sqlitedb.Committer
	// insert is prepared once: preparing costs more than running it.
	insert *sql.Stmt
	opts   QueueOptions
	now    func() time.Time
}

var _ billing.Queue = (*Queue)(nil)

// NewQueue keeps the queue in db, which must hold its tables (queue,
// dead_letter) already; writes groups its inserts with the other writes to
// db (the receipts share the file, see package embedded). The caller closes
// writes, then db.
func NewQueue(db *sql.DB, writes *sqlitedb.Committer, opts QueueOptions) (*Queue, error) {
	if opts.Visibility <= 0 {
		opts.Visibility = 60 * time.Second
	}
	if opts.MaxReceives <= 0 {
		opts.MaxReceives = 10
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	insert, err := db.Prepare(`INSERT INTO queue (body, visible_at, enqueued_at) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("preparing queue: %w", err)
	}
	return &Queue{db: db, writes: writes, insert: insert, opts: opts, now: time.Now}, nil
}

// Enqueue stores all events in one transaction, shared with concurrent
// callers (group commit), so concurrent requests share one fsync.
func (q *Queue) Enqueue(ctx context.Context, events ...billing.Event) error {
	if len(events) == 0 {
		return nil
	}
	step, err := q.EnqueueStep(events)
	if err != nil {
		return err
	}
	if err := q.writes.Do(step); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// EnqueueStep encodes events now and returns the write that inserts them,
// for a caller that commits it in one transaction with other writes to the
// same file.
func (q *Queue) EnqueueStep(events []billing.Event) (func(*sql.Tx) error, error) {
	bodies := make([][]byte, len(events))
	for i, ev := range events {
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("enqueue: encoding event: %w", err)
		}
		bodies[i] = body
	}
	now := q.now().UnixMilli()
	return func(tx *sql.Tx) error {
		stmt := tx.Stmt(q.insert)
		for _, body := range bodies {
			if _, err := stmt.Exec(body, now, now); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		return nil
	}, nil
}

// Receive leases up to max visible messages, polling until wait has passed.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]billing.Message, error) {
	deadline := q.now().Add(wait)
	for {
		msgs, err := q.receiveOnce(ctx, max)
		if err != nil || len(msgs) > 0 || !q.now().Before(deadline) {
			return msgs, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(q.opts.Poll):
		}
	}
}

func (q *Queue) receiveOnce(ctx context.Context, max int) ([]billing.Message, error) {
	if max <= 0 {
		max = 10
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	defer tx.Rollback()
	now := q.now().UnixMilli()

	// The candidates come in index order (visible_at, id), so the query stops
	// after max rows however long the queue is.
	rows, err := tx.QueryContext(ctx, `
		UPDATE queue SET visible_at = ?, receives = receives + 1
		WHERE id IN (SELECT id FROM queue WHERE visible_at <= ? ORDER BY visible_at, id LIMIT ?)
		RETURNING id, body, receives`,
		now+q.opts.Visibility.Milliseconds(), now, max)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	var (
		msgs     []billing.Message
		unusable []int64
		poison   []int64
	)
	for rows.Next() {
		var (
			id       int64
			body     []byte
			receives int
		)
		if err := rows.Scan(&id, &body, &receives); err != nil {
			rows.Close()
			return nil, fmt.Errorf("receive: %w", err)
		}
		if receives > q.opts.MaxReceives {
			// Delivered MaxReceives times without an ack: poison. Park it
			// where an operator can see it instead of retrying forever.
			poison = append(poison, id)
			continue
		}
		msg := billing.Message{ID: strconv.FormatInt(id, 10), Receives: receives}
		if err := json.Unmarshal(body, &msg.Event); err != nil {
			// One unreadable row must not stall every batch after it.
			unusable = append(unusable, id)
			continue
		}
		msgs = append(msgs, msg)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	for _, id := range unusable {
		if err := deadLetter(ctx, tx, id, now); err != nil {
			return nil, fmt.Errorf("receive: dead-lettering unreadable message %d: %w", id, err)
		}
	}
	for _, id := range poison {
		if err := deadLetter(ctx, tx, id, now); err != nil {
			return nil, fmt.Errorf("receive: dead-lettering message %d: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return msgs, nil
}

// deadLetter moves one message, just counted as received once more, to the
// dead-letter table with the deliveries it really had.
func deadLetter(ctx context.Context, tx *sql.Tx, id, now int64) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO dead_letter (id, body, receives, enqueued_at, dead_at)
		SELECT id, body, receives - 1, enqueued_at, ? FROM queue WHERE id = ?`, now, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM queue WHERE id = ?`, id)
	return err
}

// Extend moves a leased message's visibility d past now.
func (q *Queue) Extend(ctx context.Context, msg billing.Message, d time.Duration) error {
	_, err := q.db.ExecContext(ctx, `UPDATE queue SET visible_at = ? WHERE id = ?`, q.now().Add(d).UnixMilli(), msg.ID)
	if err != nil {
		return fmt.Errorf("extend visibility: %w", err)
	}
	return nil
}

// Ack deletes the messages.
func (q *Queue) Ack(ctx context.Context, msgs ...billing.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]any, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	if _, err := q.db.ExecContext(ctx, `DELETE FROM queue WHERE id IN (`+placeholders+`)`, ids...); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Depth counts messages waiting or leased.
func (q *Queue) Depth(ctx context.Context) (int, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM queue`).Scan(&n); err != nil {
		return 0, fmt.Errorf("queue depth: %w", err)
	}
	return n, nil
}

// DeadLetters counts messages parked after too many deliveries.
func (q *Queue) DeadLetters(ctx context.Context) (int, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM dead_letter`).Scan(&n); err != nil {
		return 0, fmt.Errorf("dead-letter count: %w", err)
	}
	return n, nil
}
