package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/queuetest"
	"github.com/egressd/egressd/embedded"
)

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, visibility time.Duration) billing.Queue {
		// The queue as the embedded backend opens it: sharing its file with the receipts.
		db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{Visibility: visibility})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.Queue
	})
}
