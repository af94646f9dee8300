package sqlite_test

import (
	"context"
	"testing"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/customers/customerstest"
	"github.com/egressd/egressd/embedded"
)

func TestConformance(t *testing.T) {
	customerstest.Run(t, func(t *testing.T) customers.Store {
		db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s := db.Customers
		return s
	})
}
