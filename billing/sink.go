package billing

import (
	"context"
	"errors"
	"time"
)

// Sink is where batches are billed. Stripe is one (billing/stripe); another
// payment provider is one new package implementing Sink, and nothing in this
// package changes.
type Sink interface {
	// Name labels the sink in metrics and logs ("stripe").
	Name() string
	// Limits says how the worker must call Report.
	Limits() SinkLimits
	// Report sends charges, at most Limits().MaxCharges of them, and returns
	// one error per charge, in order: nil when the sink counted the charge,
	// now or on an earlier call. It must be idempotent on the batch's ID
	// and Resend: the worker sends a batch again after a crash or a lost
	// reply, always with the same value, and the sink must count it once.
	// An error that is not a *ReportError is taken as retryable.
	Report(ctx context.Context, charges []Charge) []error
}

// SinkLimits are a sink's rules for its callers.
type SinkLimits struct {
	// MaxCharges is the most charges one Report call may carry (at least 1).
	MaxCharges int
	// OneCallPerCustomer: the sink refuses a second call for a customer
	// while one is in flight (Stripe's v1 meter events), so a customer's
	// charges go one call at a time, across all workers.
	OneCallPerCustomer bool
	// Aggregate: a customer's events served in one window are billed as one
	// charge carrying their sum (the worker's Window). Otherwise each event
	// is its own batch, with its cause as identifier.
	Aggregate bool
	// MaxValue is the largest value one charge may carry; 0 is no limit
	// beyond int64.
	MaxValue int64
}

// Charge is one batch billed to one account.
type Charge struct {
	// Account is the customer's account at the sink ("stripe:cus_...").
	Account string
	Batch   Batch
}

// ReportError is how a Sink says what the worker should do after a failed
// charge. Any other error is treated as retryable.
type ReportError struct {
	// Retryable: the same call may succeed later (429, 5xx, network).
	// Otherwise the sink refused the charge for good and its batch becomes
	// unbillable with Reason.
	Retryable bool
	// RetryAfter is how long the sink asked to wait; 0 lets the worker choose.
	RetryAfter time.Duration
	// Reason is the sink's explanation, kept in the ledger.
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

// classify reads a Sink error: whether to try again, after how long the
// sink asked for, and the reason to keep in the ledger.
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
