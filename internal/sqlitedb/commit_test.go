package sqlitedb

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func TestCommitterGroupsWritesAndIsolatesFailures(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	c := NewCommitter(db)

	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Do(func(tx *sql.Tx) error {
				if i%10 == 0 {
					// A write that inserts then fails must leave nothing behind.
					if _, err := tx.Exec(`INSERT INTO t VALUES (?)`, fmt.Sprint("bad", i)); err != nil {
						return err
					}
					return errors.New("refused")
				}
				_, err := tx.Exec(`INSERT INTO t VALUES (?)`, fmt.Sprint(i))
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%10 == 0) != (err != nil) {
			t.Fatalf("write %d: err %v", i, err)
		}
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM t`).Scan(&n)
	if n != 180 {
		t.Fatalf("%d rows, want 180", n)
	}
	var bad int
	db.QueryRow(`SELECT count(*) FROM t WHERE k LIKE 'bad%'`).Scan(&bad)
	if bad != 0 {
		t.Fatalf("failed writes left %d rows", bad)
	}
	c.Close()
	if err := c.Do(func(*sql.Tx) error { return nil }); !errors.Is(err, ErrCommitterClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}
