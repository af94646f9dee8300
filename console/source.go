package console

import (
	"context"
	"errors"
	"time"

	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
)

// Source is what the console reads and the one thing it changes (re-drive).
type Source interface {
	Overview(ctx context.Context, now time.Time) (Overview, error)
	Customers(ctx context.Context, now time.Time) ([]CustomerRow, error)                  // this month's figures
	Customer(ctx context.Context, customer string, now time.Time) (CustomerDetail, error) // ErrNotFound if unknown
	Problems(ctx context.Context) ([]ProblemGroup, error)
	// Redrive re-queues the customer's entries in that state with that reason for billing; it reports how many.
	Redrive(ctx context.Context, g ProblemKey) (int, error)
	Receipt(ctx context.Context, cid string) (receipt.AnyReceipt, error) // ErrNotFound if unknown
}

// Overview is the service at a glance.
type Overview struct {
	EgressToday, EgressMonth uint64 // bytes, UTC day and month
	EventsToday, EventsMonth int64
	InvocationsPerSecond     float64 // now (last minute)
	QueueDepth, DeadLetters  int
	BillingLag               time.Duration           // age of the oldest pending ledger entry (problems are counted apart); 0 if none
	States                   map[billing.State]int64 // ledger entries per state (billing.States lists them in order)
	LastReconcile            *Reconcile              // nil: never reconciled
	Daily                    []DayTotal              // the last 30 UTC days, oldest first, every day present
}

// Reconcile is the outcome of the last reconciliation with the billing sink.
type Reconcile struct {
	At      time.Time
	OK      bool
	Summary string
}

// DayTotal is one UTC day's egress.
type DayTotal struct {
	Date   string // 2006-01-02
	Bytes  uint64
	Events int64
}

// CustomerRow is one customer's figures for this month.
type CustomerRow struct {
	Customer, Account string
	Bytes             uint64
	Events            int64
	States            map[billing.State]int64
}

// CustomerDetail is one customer's month, broken down.
type CustomerDetail struct {
	CustomerRow
	Spaces []SpaceTotal
	Daily  []DayTotal
	Recent []billing.Entry
}

// SpaceTotal is one space's egress this month.
type SpaceTotal struct {
	Space  string
	Bytes  uint64
	Events int64
}

// ProblemKey names a group of ledger entries that were not billed, and what
// a re-drive acts on.
type ProblemKey struct {
	Customer string
	State    billing.State
	Reason   string
}

// ProblemGroup is how many entries share a ProblemKey.
type ProblemGroup struct {
	ProblemKey
	Events int64
	Bytes  uint64
	Oldest time.Time
}

// ErrNotFound is what a Source returns for an unknown customer or receipt.
var ErrNotFound = errors.New("console: not found")
