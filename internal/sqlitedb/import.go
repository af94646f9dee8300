package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// importsSchema records which files were imported, so that two processes
// opening the same data directory at once cannot import a file twice.
const importsSchema = `CREATE TABLE IF NOT EXISTS imported_file (name TEXT PRIMARY KEY, at INTEGER NOT NULL)`

// Import copies an older file's rows into db, once: it attaches the file at
// path as "legacy", runs statements (INSERT ... SELECT ... FROM legacy.T) in
// one transaction, and then renames the file (and its WAL) with the suffix
// ".imported". A missing file is nothing to import.
func Import(ctx context.Context, db *sql.DB, path string, statements ...string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := db.ExecContext(ctx, importsSchema); err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	defer conn.Close()
	// mode=rw: if another process has just imported and renamed the file,
	// attaching fails instead of creating an empty one.
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS legacy`, "file:"+path+"?mode=rw"); err != nil {
		if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("importing %s: %w", path, err)
	}
	defer conn.ExecContext(context.Background(), `DETACH DATABASE legacy`)

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO main.imported_file (name, at) VALUES (?, unixepoch()) ON CONFLICT DO NOTHING`, path)
	if err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // another process imported it first
	}
	for _, stmt := range statements {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("importing %s: %w", path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	if _, err := conn.ExecContext(ctx, `DETACH DATABASE legacy`); err != nil {
		return fmt.Errorf("importing %s: %w", path, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, path+suffix+".imported"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("importing %s: rows copied, but renaming the file failed: %w", path, err)
		}
	}
	return nil
}
