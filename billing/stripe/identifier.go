package stripe

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/egressd/egressd/billing"
)

// Identifier is the meter event identifier of a batch ID: the ID (the cause
// of the batch's first event, an invocation CID of about 60 characters) when
// that fits Stripe's 100-character limit, otherwise a hash of it. Stripe
// rejects or ignores a second event with the same identifier, which is what
// makes re-sending safe.
func Identifier(id string) string {
	if len(id) <= 100 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// resendSuffix separates a batch ID from its resend in an identifier. Batch
// IDs are CIDs, which never hold a '-'.
const resendSuffix = "-r"

// BatchIdentifier is the meter event identifier b is sent under:
// Identifier(b.ID) the first time, and Identifier("<ID>-r<n>") once a
// redrive sends it again for the nth time after Stripe rejected it. Stripe
// keeps an identifier taken for 24 hours even when it rejected the event,
// and would refuse the same one as a duplicate (which Report takes for
// "already counted"); deriving the new one from what the ledger stores
// means a redrive run twice sends under the same new identifier, and
// Stripe counts it once. A batch of one event has that event's cause as ID,
// so its first identifier is the cause, as egressd sent before batches.
func BatchIdentifier(b billing.Batch) string {
	if b.Resend <= 0 {
		return Identifier(b.ID)
	}
	return Identifier(b.ID + resendSuffix + strconv.Itoa(b.Resend))
}

// batchOf reads the batch ID and resend an identifier was made from by
// BatchIdentifier. A hashed identifier cannot be traced back: ok is false.
func batchOf(identifier string) (id string, resend int, ok bool) {
	if identifier == "" || strings.HasPrefix(identifier, "sha256:") {
		return "", 0, false
	}
	if i := strings.LastIndex(identifier, resendSuffix); i > 0 {
		n, err := strconv.Atoi(identifier[i+len(resendSuffix):])
		if err == nil && n > 0 && strconv.Itoa(n) == identifier[i+len(resendSuffix):] {
			return identifier[:i], n, true
		}
	}
	return identifier, 0, true
}

// IdempotencyKey is the Idempotency-Key header of a v1 meter event request.
// It is the identifier plus a digest of the request, so a retry of the same
// request replays Stripe's stored answer, while a changed request (a redrive
// after the customer's Stripe account was fixed) is not refused as a
// mismatched replay; the identifier still stops double counting.
func IdempotencyKey(identifier, eventName, customer, value string, timestamp int64) string {
	sum := sha256.Sum256([]byte(eventName + "\x00" + customer + "\x00" + value + "\x00" + strconv.FormatInt(timestamp, 10)))
	return "egressd-" + identifier + "-" + hex.EncodeToString(sum[:8])
}
