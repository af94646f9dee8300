package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
)

// Probe says whether db can take a write now, without changing it: a
// transaction (IMMEDIATE, see Open) takes the file's write lock and is
// rolled back, and a scratch file beside the database is written, synced and
// removed, which fails on a full disk or a read-only mount just as the next
// commit would.
func Probe(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("taking the write lock: %w", err)
	}
	var path string
	err = tx.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path)
	tx.Rollback()
	if err != nil {
		return fmt.Errorf("finding the database file: %w", err)
	}
	if path == "" {
		return nil // in memory: nothing on disk to fill
	}
	return probeDir(filepath.Dir(path))
}

// probeSize is written by a probe: a page, as a commit writes at least one.
const probeSize = 4096

func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".egressd-ready-*")
	if err != nil {
		return fmt.Errorf("creating a scratch file in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing a scratch file in %s: %w", dir, err)
	}
	return nil
}
