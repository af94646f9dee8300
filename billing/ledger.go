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
	// Pending: recorded and counted, not yet settled with Stripe.
	Pending State = "pending"
	// Reported: Stripe accepted the meter event. Final, except that Stripe
	// may reject it later (see Rejected).
	Reported State = "reported"
	// Unbillable: it cannot be billed as things stand (no Stripe account,
	// no Stripe key, rejected by Stripe as invalid); redrive once fixed.
	Unbillable State = "unbillable"
	// Failed: Stripe stayed unreachable for every try (the dead-letter
	// state); redrive once Stripe is back.
	Failed State = "failed"
	// Rejected: Stripe accepted the meter event, then rejected it in an
	// asynchronous error report (unknown customer, no meter); the reason is
	// Stripe's code and message. Only Reject moves an entry here; redrive
	// once fixed (it sends the event under a new identifier).
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
	ReasonNoAccount = "no Stripe account"
	ReasonNoKey     = "no Stripe key"
)

// ErrNotFound means the ledger has no entry for the cause asked for.
var ErrNotFound = errors.New("billing: no ledger entry")

// Entry is one event in the ledger with how it was settled.
type Entry struct {
	Event
	State State
	// Reason says why an entry is unbillable, failed or rejected; empty otherwise.
	Reason     string
	RecordedAt time.Time
	UpdatedAt  time.Time
}

// EntryFilter selects entries, for redrive and reports. Zero fields match all.
type EntryFilter struct {
	States   []State
	Customer string
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

// Ledger remembers every event by its cause so that each is counted and
// billed exactly once. It is deliberately small: an SQLite implementation
// does each write in one transaction, and the DynamoDB one does Record as a
// single TransactWriteItems (a conditional put on the events table plus an
// ADD on the monthly table) and Mark as one conditional update.
type Ledger interface {
	// Record inserts ev as Pending and adds its bytes and one event to the
	// monthly total of its customer, space and month, all in one
	// transaction. If the cause is already in the ledger nothing changes and
	// Record returns the stored entry with isNew false. A new entry whose
	// bytes would take the month's total past 2^63-1 is recorded already
	// settled, as Failed with a reason starting ReasonTotalOverflow, its
	// bytes left out of the total (isNew is true: the caller must not bill it).
	Record(ctx context.Context, ev Event) (entry Entry, isNew bool, err error)
	// Mark moves the entry of ev to state with reason. ev is the event as
	// recorded (an Entry's Event, or the one given to Record): a store may
	// key its rows by more than the cause (the DynamoDB ledger keys them, as
	// Storacha does, by space, resource, servedAt and cause), and a cause
	// alone would then take a query on an eventually consistent index to
	// find. Mark stores ev.Resend with the state. A Reported entry is
	// final: marking it again changes nothing, so a slow duplicate can
	// never undo a success. A Rejected entry changes only for an ev.Resend
	// above the stored one (a redrive sending it under a new identifier),
	// so a slow duplicate cannot turn Stripe's rejection into a success;
	// nor does any entry change for an ev.Resend below the stored one.
	// ErrNotFound when the event was never recorded.
	Mark(ctx context.Context, ev Event, state State, reason string) error
	// Reject moves the entry of cause to Rejected with reason, and stores
	// resend, unless the stored Resend is above resend (a late report on
	// an identifier a redrive has replaced). It applies whatever the state:
	// Stripe names a rejected meter event only by its identifier, so the
	// cause and resend are all the caller has (both ledgers key their
	// entries by cause). Rejecting a rejected entry again only updates the
	// reason. ErrNotFound when the cause was never recorded.
	Reject(ctx context.Context, cause string, resend int, reason string) error
	// Entries lists entries matching f, ordered by cause.
	Entries(ctx context.Context, f EntryFilter) ([]Entry, error)
	// Usage returns the monthly totals matching f, by customer then space.
	Usage(ctx context.Context, f UsageFilter) ([]Usage, error)
	// Count returns how many entries of f's month (and customer) are in each state.
	Count(ctx context.Context, f UsageFilter) (map[State]int64, error)
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
