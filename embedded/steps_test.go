package embedded

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing"
)

// TestMigrationFiles keeps the migration files and the steps in step: every
// migrations/<file>/NNNN_*.sql is step NNNN of the file it is under, so that
// adding one without its step (or at the wrong number) fails here, not on a
// customer's data directory.
func TestMigrationFiles(t *testing.T) {
	byDir := map[string]file{}
	for _, f := range files {
		byDir[strings.TrimSuffix(f.name, ".db")] = f
	}
	err := fs.WalkDir(migrations, "migrations", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		dir, name := path.Base(path.Dir(p)), path.Base(p)
		f, ok := byDir[dir]
		if !ok {
			t.Errorf("%s: no data file %s.db", p, dir)
			return nil
		}
		var n int
		if _, err := fmt.Sscanf(name, "%04d_", &n); err != nil || !strings.HasSuffix(name, ".sql") {
			t.Errorf("%s: want NNNN_name.sql", p)
			return nil
		}
		if n < 1 || n > len(f.steps) || f.steps[n-1].name != dir+"/"+name {
			t.Errorf("%s is not step %d of %s", p, n, f.name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And the other way: a step named for a file runs that file.
	for _, f := range files {
		for i, s := range f.steps {
			if _, err := fs.Stat(migrations, "migrations/"+s.name); err != nil {
				t.Errorf("step %d of %s names %s: %v", i+1, f.name, s.name, err)
			}
		}
	}
}
