package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/egressd/egressd/internal/sqlitedb"
)

// StaleError is the answer, with Options.ReadOnly, for a file an older
// egressd wrote: this binary reads only the newest layout, and a read-only
// open may not migrate the file to it.
type StaleError struct {
	File  string // its path
	Found int    // its user_version
	Known int    // the version this binary reads
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s is at schema version %d, and this egressd reads version %d: it opens the file read-only and "+
		"will not migrate it. Run serve or worker of this version on the data directory once (it migrates the files), "+
		"or read it with the egressd that wrote it", e.File, e.Found, e.Known)
}

// openReadOnly opens one file as it is and checks that its layout is the
// one this binary reads, without changing it.
func (db *DB) openReadOnly(ctx context.Context, dataDir string, f file) (*sql.DB, error) {
	path := filepath.Join(dataDir, f.name)
	conn, err := sqlitedb.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	db.files = append(db.files, conn)
	known := len(f.steps)
	found, err := userVersion(ctx, conn)
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the schema version of %s: %w", path, err)
	case found > known:
		return nil, &VersionError{File: path, Found: found, Known: known}
	case found < known:
		return nil, &StaleError{File: path, Found: found, Known: known}
	}
	return conn, nil
}
