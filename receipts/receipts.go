// Package receipts stores the signed receipts egressd issues and finds them
// again by invocation CID or by the receipt's own CID.
package receipts

import (
	"context"
	"errors"

	"github.com/storacha/go-ucanto/core/receipt"
)

// ErrNotFound means no receipt is stored under the CID asked for.
var ErrNotFound = errors.New("receipts: not found")

// Store keeps receipts. Put is write-once: storing a receipt for an
// invocation that already has one keeps the first.
type Store interface {
	Put(ctx context.Context, rcpts ...receipt.AnyReceipt) error
	// Get finds a receipt by its invocation (task) CID or its own CID.
	Get(ctx context.Context, cid string) (receipt.AnyReceipt, error)
}
