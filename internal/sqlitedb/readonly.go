package sqlitedb

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// OpenReadOnly opens the existing database file at path for reading only
// (mode=ro): nothing is created, and no write can reach the file. It is for
// reports on a data directory that may be a backup, or one this user may
// not write.
//
// A WAL file is read through its -shm index, which SQLite must be able to
// create beside it: in a directory nobody may write (a backup on a
// read-only mount) the file is opened immutable instead, which is right
// there because nothing can be changing it.
func OpenReadOnly(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no %s in %s: has serve (or worker) ever run on this data directory?", filepath.Base(path), filepath.Dir(path))
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	base := "file:" + path + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=cache_size(-1024)"
	if !Writable(filepath.Dir(path)) {
		base += "&immutable=1"
	}
	db, err := sql.Open("sqlite", base)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	// Read a page now, so that a file that cannot be read is reported here,
	// naming it, rather than by the first query.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	return db, nil
}

// Writable says whether this process may create files in dir.
func Writable(dir string) bool {
	return syscall.Access(dir, 2 /* W_OK */) == nil
}
