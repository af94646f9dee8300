package stripe

import (
	"strings"
	"testing"

	"github.com/egressd/egressd/billing"
)

// TestIdentifierNamesItsBatch: the webhook finds a batch again from the
// identifier Stripe reports, for the first send and for each resend, and
// each resend goes under an identifier of its own.
func TestIdentifierNamesItsBatch(t *testing.T) {
	const cid = "bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	seen := make(map[string]bool)
	for resend := range 3 {
		id := BatchIdentifier(billing.Batch{ID: cid, Resend: resend})
		if seen[id] {
			t.Fatalf("resend %d reuses identifier %s", resend, id)
		}
		seen[id] = true
		batch, n, ok := batchOf(id)
		if !ok || batch != cid || n != resend {
			t.Errorf("batchOf(%s) = %q, %d, %v; want %s, %d", id, batch, n, ok, cid, resend)
		}
	}
	if id := BatchIdentifier(billing.Batch{ID: cid}); id != cid {
		t.Errorf("first send goes under %s, want the batch ID %s (for a batch of one event, its cause, what every earlier egressd sent)", id, cid)
	}
	if id := BatchIdentifier(billing.Batch{ID: cid, Resend: 2}); id != cid+"-r2" {
		t.Errorf("second resend goes under %s, want %s-r2", id, cid)
	}
	long := strings.Repeat("x", 101)
	if _, _, ok := batchOf(Identifier(long)); ok {
		t.Error("batchOf read a batch ID from a hashed identifier")
	}
	for _, id := range []string{"c-r0", "c-r01", "c-rx"} {
		if batch, n, ok := batchOf(id); !ok || batch != id || n != 0 {
			t.Errorf("batchOf(%s) = %q, %d, %v; want the identifier itself as a batch ID", id, batch, n, ok)
		}
	}
}
