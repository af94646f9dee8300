package embedded

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strconv"
)

// The SQL of the migrations lives in files, not Go strings, so that a
// schema reads (and diffs) as SQL; Go steps are kept for what SQL cannot
// say alone, such as "add this column if the file lacks it".
//
//go:embed migrations
var migrations embed.FS

// A file is one SQLite file of the data directory and the steps that bring it
// to the schema this binary reads: steps[i] takes it from version i to i+1.
// Its version is PRAGMA user_version, which egressd left at 0 before files
// had versions: step 1 of every file adopts what it wrote then.
type file struct {
	name  string
	steps []step
}

// A step is one numbered migration. run executes inside the migration's
// transaction; committed, when set, runs once that transaction is durable,
// for work outside the file (moving aside files the step copied rows from).
type step struct {
	name      string
	run       func(ctx context.Context, tx *sql.Tx, dataDir string) error
	committed func(dataDir string) error
}

// sqlStep is a migration that is only SQL: migrations/<path>.
func sqlStep(path string) step {
	return step{name: path, run: func(ctx context.Context, tx *sql.Tx, _ string) error {
		return execFile(ctx, tx, path)
	}}
}

// execFile runs every statement of migrations/<path>.
func execFile(ctx context.Context, tx *sql.Tx, path string) error {
	text, err := migrations.ReadFile("migrations/" + path)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(text)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// VersionError is the answer for a file a newer egressd migrated: this
// binary does not know its layout, and writing to it could corrupt it.
type VersionError struct {
	File  string // its path
	Found int    // its user_version
	Known int    // the newest version this binary knows
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s is at schema version %d, but this egressd knows versions up to %d: run a newer egressd on this data directory",
		e.File, e.Found, e.Known)
}

// migrate brings the file open as db (at path) to its newest version. The
// steps run in one transaction that takes the write lock first (BEGIN
// IMMEDIATE, see sqlitedb.Open), and the version is read again under it:
// another process opening the same directory at once waits (busy timeout),
// then finds the work done. A file already at its newest version costs one
// read and no write.
func migrate(ctx context.Context, db *sql.DB, path, dataDir string, f file) error {
	known := len(f.steps)
	found, err := userVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("reading the schema version of %s: %w", path, err)
	}
	if found == known {
		return nil
	}
	if found > known {
		return &VersionError{File: path, Found: found, Known: known}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating %s: %w", path, err)
	}
	defer tx.Rollback()
	if found, err = userVersion(ctx, tx); err != nil {
		return fmt.Errorf("reading the schema version of %s: %w", path, err)
	}
	if found > known {
		return &VersionError{File: path, Found: found, Known: known}
	}
	ran := f.steps[found:]
	for i, s := range ran {
		if err := s.run(ctx, tx, dataDir); err != nil {
			return fmt.Errorf("migrating %s to version %d (%s): %w", path, found+i+1, s.name, err)
		}
	}
	// user_version is in the file's header, written by this transaction:
	// the steps and the version that records them commit together.
	if _, err := tx.ExecContext(ctx, `PRAGMA user_version = `+strconv.Itoa(known)); err != nil {
		return fmt.Errorf("migrating %s: setting the schema version: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating %s: %w", path, err)
	}
	for i, s := range ran {
		if s.committed == nil {
			continue
		}
		if err := s.committed(dataDir); err != nil {
			return fmt.Errorf("migrated %s to version %d (%s), but: %w", path, found+i+1, s.name, err)
		}
	}
	return nil
}

func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}
