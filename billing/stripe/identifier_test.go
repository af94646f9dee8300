package stripe

import (
	"strings"
	"testing"

	"github.com/egressd/egressd/billing"
)

// TestIdentifierNamesItsCause: the webhook finds an entry again from the
// identifier Stripe reports, for the first send and for each resend, and
// each resend goes under an identifier of its own.
func TestIdentifierNamesItsCause(t *testing.T) {
	const cid = "bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	seen := make(map[string]bool)
	for resend := range 3 {
		id := EventIdentifier(billing.Event{Cause: cid, Resend: resend})
		if seen[id] {
			t.Fatalf("resend %d reuses identifier %s", resend, id)
		}
		seen[id] = true
		cause, n, ok := causeOf(id)
		if !ok || cause != cid || n != resend {
			t.Errorf("causeOf(%s) = %q, %d, %v; want %s, %d", id, cause, n, ok, cid, resend)
		}
	}
	if id := EventIdentifier(billing.Event{Cause: cid}); id != Identifier(cid) {
		t.Errorf("first send goes under %s, want %s (what every earlier egressd sent)", id, Identifier(cid))
	}
	long := strings.Repeat("x", 101)
	if _, _, ok := causeOf(Identifier(long)); ok {
		t.Error("causeOf read a cause from a hashed identifier")
	}
	for _, id := range []string{"c-r0", "c-r01", "c-rx"} {
		if cause, n, ok := causeOf(id); !ok || cause != id || n != 0 {
			t.Errorf("causeOf(%s) = %q, %d, %v; want the identifier itself as a cause", id, cause, n, ok)
		}
	}
}
