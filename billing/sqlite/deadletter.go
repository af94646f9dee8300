package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
)

var _ billing.DeadLetterQueue = (*Queue)(nil)

// ListDeadLetters returns up to limit dead letters, the first set aside first.
func (q *Queue) ListDeadLetters(ctx context.Context, limit int) ([]billing.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := q.db.QueryContext(ctx, `SELECT id, body, receives, enqueued_at, dead_at FROM dead_letter ORDER BY dead_at, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	defer rows.Close()
	out := []billing.DeadLetter{}
	for rows.Next() {
		var (
			id, enqueued, dead int64
			body               []byte
			dl                 billing.DeadLetter
		)
		if err := rows.Scan(&id, &body, &dl.Receives, &enqueued, &dead); err != nil {
			return nil, fmt.Errorf("listing dead letters: %w", err)
		}
		dl.ID = strconv.FormatInt(id, 10)
		dl.EnqueuedAt = time.UnixMilli(enqueued).UTC()
		dl.DeadAt = time.UnixMilli(dead).UTC()
		billing.DecodeDeadLetter(&dl, body)
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	return out, nil
}

// Requeue moves the dead letters back onto the queue in one transaction,
// visible at once and with no deliveries counted, under new row IDs (the
// queue's IDs only grow, so a worker still holding the old delivery cannot
// acknowledge the new one). Unknown IDs are skipped.
func (q *Queue) Requeue(ctx context.Context, ids []string) (int, error) {
	where, args := "", []any{q.now().UnixMilli()}
	if len(ids) > 0 {
		for _, id := range ids {
			n, err := strconv.ParseInt(id, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("requeue: %q is not a dead letter's ID", id)
			}
			args = append(args, n)
		}
		where = ` WHERE id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + `)`
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO queue (body, visible_at, receives, enqueued_at)
		SELECT body, ?, 0, enqueued_at FROM dead_letter`+where+` ORDER BY id`, args...)
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	moved, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dead_letter`+where, args[1:]...); err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	return int(moved), nil
}
