package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files of the version before journal.db, when the queue and the receipts
// had a file each. journal.db's first migration copies their rows over.
const (
	legacyQueueFile    = "queue.db"
	legacyReceiptsFile = "receipts.db"
)

// importFile copies the rows of the earlier version's file at path into the
// database of tx with copy, unless it is missing or imported_file says it was
// imported already (by an egressd from before migrations, whose renaming of
// the file then failed). The rows are read through a connection of their own
// instead of ATTACH, which SQLite refuses inside the migration's transaction.
func importFile(ctx context.Context, tx *sql.Tx, path string, copy func(context.Context, *sql.Tx, *sql.DB) error) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// The table egressd kept before migrations, kept so that a file it
	// imported is never imported twice.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS imported_file (name TEXT PRIMARY KEY, at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO imported_file (name, at) VALUES (?, unixepoch()) ON CONFLICT DO NOTHING`, path)
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	// mode=rw: never create the file; busy_timeout: its last writer may be
	// an old egressd still shutting down.
	legacy, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	defer legacy.Close()
	if err := copy(ctx, tx, legacy); err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	return nil
}

// copyQueue copies queued and dead-lettered events, in their order; the
// queue gives them new IDs.
func copyQueue(ctx context.Context, tx *sql.Tx, legacy *sql.DB) error {
	if err := copyRows(ctx, tx, legacy,
		`SELECT body, visible_at, receives, enqueued_at FROM queue ORDER BY id`,
		`INSERT INTO queue (body, visible_at, receives, enqueued_at) VALUES (?, ?, ?, ?)`, 4); err != nil {
		return fmt.Errorf("copying the queue: %w", err)
	}
	if err := copyRows(ctx, tx, legacy,
		`SELECT body, receives, enqueued_at, dead_at FROM dead_letter ORDER BY id`,
		`INSERT INTO dead_letter (body, receives, enqueued_at, dead_at) VALUES (?, ?, ?, ?)`, 4); err != nil {
		return fmt.Errorf("copying the dead letters: %w", err)
	}
	return nil
}

// copyReceipts copies receipts, keeping one already stored for an invocation.
func copyReceipts(ctx context.Context, tx *sql.Tx, legacy *sql.DB) error {
	if err := copyRows(ctx, tx, legacy,
		`SELECT invocation, receipt, archive FROM receipt`,
		`INSERT INTO receipt (invocation, receipt, archive) VALUES (?, ?, ?) ON CONFLICT (invocation) DO NOTHING`, 3); err != nil {
		return fmt.Errorf("copying the receipts: %w", err)
	}
	return nil
}

// copyRows runs insert in tx for each row query returns from legacy, one
// row in memory at a time: an old queue or receipt file may be large.
func copyRows(ctx context.Context, tx *sql.Tx, legacy *sql.DB, query, insert string, columns int) error {
	rows, err := legacy.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return err
	}
	defer stmt.Close()
	values := make([]any, columns)
	ptrs := make([]any, columns)
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, values...); err != nil {
			return err
		}
	}
	return rows.Err()
}

// moveImported renames the legacy files (and their WAL) with the suffix
// ".imported" once journal.db's first migration has committed their rows,
// so that an operator sees they are no longer read.
func moveImported(dataDir string) error {
	for _, name := range []string{legacyQueueFile, legacyReceiptsFile} {
		path := filepath.Join(dataDir, name)
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(path+suffix, path+suffix+".imported"); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rows of %s imported, but renaming the file failed: %w", path, err)
			}
		}
	}
	return nil
}
