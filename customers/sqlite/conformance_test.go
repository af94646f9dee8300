package sqlite_test

import (
	"testing"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/customers/customerstest"
	"github.com/egressd/egressd/customers/sqlite"
)

func TestConformance(t *testing.T) {
	customerstest.Run(t, func(t *testing.T) customers.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
