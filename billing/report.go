package billing

import (
	"context"
	"errors"
	"time"
)

// Reporter sends one event's usage to the payment provider (Stripe) for the
// given account ("stripe:cus_..."). It must be idempotent on ev.Cause: the
// worker calls it again after a crash or a lost reply, and the provider must
// count the event once.
type Reporter interface {
	Report(ctx context.Context, account string, ev Event) error
}

// ReportError is how a Reporter says what the worker should do after a
// failed call. Any other error is treated as retryable.
type ReportError struct {
	// Retryable: the same call may succeed later (429, 5xx, network).
	// Otherwise the provider rejected the event for good and it becomes
	// unbillable with Reason.
	Retryable bool
	// RetryAfter is how long the provider asked to wait; 0 lets the worker choose.
	RetryAfter time.Duration
	// Reason is the provider's explanation, kept in the ledger.
	Reason string
	Err    error
}

func (e *ReportError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Err.Error()
}

func (e *ReportError) Unwrap() error { return e.Err }

// classify reads a Reporter error: whether to try again, after how long the
// provider asked for, and the reason to keep in the ledger.
func classify(err error) (retry bool, after time.Duration, reason string) {
	var re *ReportError
	if errors.As(err, &re) {
		reason = re.Reason
		if reason == "" {
			reason = re.Error()
		}
		return re.Retryable, re.RetryAfter, reason
	}
	return true, 0, err.Error()
}
