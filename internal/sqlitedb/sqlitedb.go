// Package sqlitedb opens the SQLite files of the embedded backend with the
// settings that make them durable and safe to share between processes (the
// server, a worker sidecar and CLI commands on the same data directory), and
// groups concurrent writes into one commit. What the files hold, and how
// their schema moves forward, belongs to package embedded.
package sqlitedb

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go driver: no C toolchain needed
)

// Open opens (creating if needed) the database file at path in WAL mode with
// full fsync on commit, so a committed write survives kill -9 and power loss.
// Every transaction begins IMMEDIATE: it takes the write lock at BEGIN, so
// two processes never both read, then both try to write and one fail.
func Open(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	// busy_timeout first, so that switching a new file to WAL while another
	// process does the same waits for it instead of failing; then it lets
	// concurrent processes wait for the write lock.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_pragma=cache_size(-1024)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Keep connections (and the statements prepared on them) open instead of
	// the default two idle ones: reopening costs far more than a query. Eight
	// is plenty for the cores there are, and bounds the page caches (1 MB
	// each, cache_size above) that make up most of the process's memory.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	// sql.Open connects lazily: connect now, so that a file that cannot be
	// opened (or switched to WAL) is reported here, naming it.
	if err := ping(db); err != nil {
		db.Close()
		// SQLite says only "unable to open database file (14)" or
		// "attempt to write a readonly database".
		if dir := filepath.Dir(path); !Writable(dir) {
			return nil, fmt.Errorf("opening %s: the directory %s is read-only, and this command writes to it", path, dir)
		}
		if _, serr := os.Stat(path); serr == nil && !Writable(path) {
			return nil, fmt.Errorf("opening %s: the file is read-only, and this command writes to it", path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// ping connects, waiting out SQLITE_BUSY for as long as busy_timeout would:
// switching a brand-new file to WAL while another process opens it too can
// answer busy at once, without calling the busy handler (two processes
// opening a fresh data directory together: serve and a worker sidecar).
func ping(db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.Ping()
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
