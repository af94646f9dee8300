package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// backupOrder is the order Backup copies the files in. Each copy is a
// snapshot of its file alone, so the order is what keeps the set
// consistent: journal.db before ledger.db, because the worker writes an
// event to the ledger before it deletes it from the queue. A message the
// worker settles between the two snapshots is then in both, and billed once
// after a restore (the ledger counts each cause once); the other order could
// catch it in neither, and lose it. customers.db and revocations.db are
// read, never written, by the request path.
var backupOrder = []file{journalFile, ledgerFile, customersFile, revocationsFile}

// Backup writes a consistent copy of the data directory dataDir into the
// new directory out while other processes go on using it: each SQLite file
// with VACUUM INTO (a snapshot of one read transaction, which writers do not
// wait for), then each of extra (names of other files in dataDir, such as
// the service key) as it is. A file that does not exist is skipped; a data
// directory with none of the SQLite files is refused.
//
// Nothing is written to out itself until the copy is complete and on disk:
// the files go to a directory beside it, renamed to out at the end, so out
// either does not exist or holds a whole backup. out may exist only if it is
// empty. Backup neither migrates nor checks the files: a backup holds what
// the data directory held, for the egressd that wrote it.
//
// It returns the names of the files copied.
func Backup(ctx context.Context, dataDir, out string, extra ...string) (_ []string, err error) {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("backup: %s exists and is not empty: name a new directory", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(dataDir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()

	var copied []string
	for _, f := range backupOrder {
		src := filepath.Join(dataDir, f.name)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := vacuumInto(ctx, src, filepath.Join(tmp, f.name)); err != nil {
			return nil, fmt.Errorf("backup of %s: %w", src, err)
		}
		copied = append(copied, f.name)
	}
	if len(copied) == 0 {
		return nil, fmt.Errorf("backup: %s holds no egressd data (none of %s)", dataDir, fileNames())
	}
	for _, name := range extra {
		src := filepath.Join(dataDir, name)
		if err := copyFile(src, filepath.Join(tmp, name)); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("backup of %s: %w", src, err)
		}
		copied = append(copied, name)
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	// An empty out (the check above) is replaced by rename; one that
	// appeared meanwhile with files in it makes the rename fail.
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return copied, nil
}

// vacuumInto writes a compact copy of the SQLite file src to dst, from one
// read transaction, and syncs it: SQLite does not sync what VACUUM INTO
// writes. The connection never creates src (mode=rw), changes its journal
// mode or migrates it; it is not read-only because a read-only connection
// cannot remove the -wal and -shm files it had to create beside a file
// nobody has open, and those would then belong to whoever ran the backup.
func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite", "file:"+src+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return err
	}
	return syncFile(dst)
}

// copyFile copies src to dst (created, mode 0600: the service key is a
// secret) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileNames lists the data directory's SQLite files, for messages.
func fileNames() string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}
