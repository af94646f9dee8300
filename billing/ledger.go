package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// State is where an event stands in the ledger.
type State string

// The ledger states. Every recorded event is in exactly one of them, and no
// event ever leaves the ledger: an operator can always see what was billed,
// what was not and why.
const (
	// Pending: recorded and counted, not yet settled with the sink.
	Pending State = "pending"
	// Reported: the sink accepted the charge. Final, except that the sink
	// may reject it later (see Rejected).
	Reported State = "reported"
	// Unbillable: it cannot be billed as things stand (no billing account,
	// no sink configured, refused by the sink as invalid); redrive once fixed.
	Unbillable State = "unbillable"
	// Failed: the sink stayed unreachable for every try (the dead-letter
	// state); redrive once it is back.
	Failed State = "failed"
	// Rejected: the sink accepted the charge, then rejected it in an
	// asynchronous error report (Stripe: unknown customer, no meter); the
	// reason is the sink's code and message. Only Reject moves a batch
	// here; redrive once fixed (it sends the batch under a new identifier).
	Rejected State = "rejected"
)

// States lists every state in the order reports show them.
var States = []State{Pending, Reported, Unbillable, Failed, Rejected}

// ParseState checks s names a state.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown ledger state %q (want one of %v)", s, States)
}

// Reasons the worker writes for unbillable events.
const (
	ReasonNoAccount = "the customer has no billing account"
	ReasonNoSink    = "no billing sink configured"
)

// ErrNotFound means the ledger has no entry (or batch) for the cause (or
// batch ID) asked for.
var ErrNotFound = errors.New("billing: no ledger entry")

// Entry is one event in the ledger with how it was settled.
type Entry struct {
	Event
	// Batch is the ID of the batch the event was billed in.
	Batch string `json:"batch"`
	State State  `json:"state"`
	// Reason says why an entry is unbillable, failed or rejected; empty otherwise.
	Reason     string    `json:"reason,omitempty"`
	RecordedAt time.Time `json:"recordedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// EntryFilter selects entries, for redrive and reports. Zero fields match all.
type EntryFilter struct {
	States   []State
	Customer string
	// Batch narrows to the members of one batch; empty is all.
	Batch string
	// After is a cause: only entries ordered after it are returned, so a
	// caller can page through a large ledger (entries come ordered by cause).
	After string
	// Limit bounds one page; zero means 100.
	Limit int
}

// UsageFilter selects monthly totals and state counts.
type UsageFilter struct {
	// Month is YYYY-MM (UTC, of servedAt); required.
	Month string
	// Customer narrows to one customer; empty is all.
	Customer string
}

// Usage is a monthly total of one customer's egress from one space.
type Usage struct {
	Customer string `json:"customer"`
	Space    string `json:"space"`
	Month    string `json:"month"`
	Bytes    int64  `json:"bytes"`
	Events   int64  `json:"events"`
}

// DailyUsage is what one space of a customer served on one UTC day, as the
// ledger counted it: the same events as the monthly totals.
type DailyUsage struct {
	Customer string `json:"customer"`
	Space    string `json:"space"`
	// Day is YYYY-MM-DD in UTC.
	Day    string `json:"day"`
	Bytes  int64  `json:"bytes"`
	Events int64  `json:"events"`
}

// DailyFilter selects a customer's daily totals.
type DailyFilter struct {
	// Customer is required.
	Customer string
	// Spaces, when not empty, are the only spaces read (each one range
	// read); otherwise every space of the customer.
	Spaces []string
	// From and To bound the days: From <= day < To, both UTC days.
	From, To time.Time
}

// Day is the UTC day of t: YYYY-MM-DD.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// BatchFilter selects batches, for reconciliation with the sink.
type BatchFilter struct {
	// Customer is required.
	Customer string
	// From and To bound the batches' Timestamp: From <= Timestamp < To.
	From, To time.Time
}

// Ledger remembers every event by its cause so that each is counted and
// billed exactly once, and every batch the worker sends so that a batch is
// sent again with the same identifier and value however often it is retried.
// An event and its batch always share a state: Settle and Reject move them
// together.
type Ledger interface {
	// Record records the events of evs not yet in the ledger as Pending,
	// gathered into batches by rule (billing.FormBatches) and counted in the
	// monthly totals of their customer, space and month, in one transaction
	// per batch at least: a batch and its members are written together or
	// not at all, and each batch adds to a monthly total once. It returns
	// one entry per event of evs, in order (for an event already in the
	// ledger, the stored entry, untouched), and the batches it made. An
	// event whose bytes would take its month's total past 2^63-1 is
	// recorded already settled, as Failed with a reason starting
	// ReasonTotalOverflow, alone in its batch, its bytes left out of the
	// total; that batch is not among those returned.
	Record(ctx context.Context, evs []Event, rule BatchRule) (entries []Entry, batches []Batch, err error)
	// Batch returns the batch with id; ErrNotFound when there is none.
	Batch(ctx context.Context, id string) (Batch, error)
	// Settle moves each batch, and every member of it, to its state with its
	// reason, storing the batch's Resend and, when not empty, its Account. A Reported batch is final: settling
	// it again changes nothing, so a slow duplicate can never undo a
	// success. A Rejected batch changes only for a Resend above the stored
	// one (a redrive sending it under a new identifier), so a slow duplicate
	// cannot turn the sink's rejection into a success; nor does any batch
	// change for a Resend below the stored one. ErrNotFound when a batch was
	// never recorded.
	Settle(ctx context.Context, settlements ...Settlement) error
	// Reject moves the batch id and its members to Rejected with reason, and
	// stores resend, unless the stored Resend is above resend (a late report
	// on an identifier a redrive has replaced). It applies whatever the
	// state: the sink names a rejected charge only by its identifier, so the
	// batch ID and resend are all the caller has. Rejecting a rejected batch
	// again only updates the reason. ErrNotFound when there is no such batch.
	Reject(ctx context.Context, id string, resend int, reason string) error
	// Entries lists entries matching f, ordered by cause.
	Entries(ctx context.Context, f EntryFilter) ([]Entry, error)
	// Batches calls fn with each batch matching f, in no promised order,
	// stopping at fn's first error, which it returns.
	Batches(ctx context.Context, f BatchFilter, fn func(Batch) error) error
	// Usage returns the monthly totals matching f, by customer then space.
	Usage(ctx context.Context, f UsageFilter) ([]Usage, error)
	// Count returns how many entries of f's month (and customer) are in each state.
	Count(ctx context.Context, f UsageFilter) (map[State]int64, error)
	// Daily returns a customer's daily totals, counted as the monthly ones
	// and in the same transaction, by space then day.
	Daily(ctx context.Context, f DailyFilter) ([]DailyUsage, error)
}

// Month is the billing month of t: YYYY-MM in UTC.
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// ParseMonth checks s is a YYYY-MM month.
func ParseMonth(s string) (string, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return "", fmt.Errorf("month %q: expected YYYY-MM", s)
	}
	return t.Format("2006-01"), nil
}

// Validate rejects events that cannot be ledgered or billed. The server
// never queues such events; this guards the worker against a corrupt or
// foreign queue message.
func (e Event) Validate() error {
	switch {
	case e.Cause == "":
		return errors.New("event has no cause")
	case e.Customer == "":
		return fmt.Errorf("event %s has no customer", e.Cause)
	case e.Space == "":
		return fmt.Errorf("event %s has no space", e.Cause)
	case e.Bytes <= 0:
		return fmt.Errorf("event %s has %d bytes, want > 0", e.Cause, e.Bytes)
	case e.ServedAt.IsZero():
		return fmt.Errorf("event %s has no servedAt", e.Cause)
	}
	return nil
}

// ReasonTotalOverflow starts the reason of an event a ledger settled as
// Failed when recording it, because its month's total could not take its
// bytes without passing 2^63-1.
const ReasonTotalOverflow = "monthly total would overflow"
