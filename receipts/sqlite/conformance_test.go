package sqlite_test

import (
	"context"
	"testing"

	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/receipts/receiptstest"
)

func TestConformance(t *testing.T) {
	receiptstest.Run(t, func(t *testing.T) receipts.Store {
		// The store as the embedded backend opens it: sharing its file with the event queue.
		db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Receipts
	})
}
