package sqlite_test

import (
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/queuetest"
	"github.com/egressd/egressd/billing/sqlite"
)

func TestQueueConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, visibility time.Duration) billing.Queue {
		q, err := sqlite.OpenQueue(t.TempDir(), sqlite.QueueOptions{Visibility: visibility})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	})
}
