package sqlite_test

import (
	"testing"

	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/receipts/receiptstest"
	"github.com/egressd/egressd/receipts/sqlite"
)

func TestConformance(t *testing.T) {
	receiptstest.Run(t, func(t *testing.T) receipts.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
