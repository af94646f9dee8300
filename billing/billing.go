// Package billing is where egress is counted and turned into money: the
// egress event, the durable queue that carries it from the server to the
// worker, the ledger that makes each event count exactly once, and the worker
// that gathers events into batches and reports them to a billing sink (Stripe
// is one, in billing/stripe; the worker knows only the Sink interface).
package billing

import (
	"context"
	"errors"
	"time"
)

// Event is one served response to bill: space S served resource R, B bytes,
// at time T, for customer C. Cause is the CID of the invocation that recorded
// it and is the event's identity everywhere downstream (ledger key, Stripe
// identifier).
type Event struct {
	Space    string    `json:"space"`
	Customer string    `json:"customer"`
	Resource string    `json:"resource"`
	Bytes    int64     `json:"bytes"`
	ServedAt time.Time `json:"servedAt"`
	Cause    string    `json:"cause"`
}

// Message is an event taken off a queue. It stays invisible to other
// receivers until it is acknowledged or its lease runs out.
type Message struct {
	// ID identifies this delivery to Ack and Extend (a row ID, an SQS receipt handle).
	ID string
	// Receives counts how often the event has been handed out, this time included.
	Receives int
	Event    Event
}

// Queue is the durable hand-off between the server and the worker. An event
// is durable once Enqueue returns nil.
type Queue interface {
	// Enqueue stores events durably; all or none.
	Enqueue(ctx context.Context, events ...Event) error
	// Receive leases up to max visible messages for the visibility timeout,
	// waiting up to wait for at least one. It returns an empty slice, not an
	// error, when none arrive.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Extend pushes a leased message's lease out by d from now.
	Extend(ctx context.Context, msg Message, d time.Duration) error
	// Ack deletes delivered messages for good.
	Ack(ctx context.Context, msgs ...Message) error
	// Depth is the number of messages waiting or leased.
	Depth(ctx context.Context) (int, error)
}

// ErrClosed is returned by stores used after Close.
var ErrClosed = errors.New("billing: store closed")
