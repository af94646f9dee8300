package billing

import (
	"fmt"
	"math"
	"time"
)

// Batch is what the sink is sent as one charge: the sum of the bytes of one
// customer's events served in one window (or one event, when the sink does
// not aggregate). A ledger writes a batch and its members before the sink is
// called, so a retry or a restart after a crash sends the same identifier
// with the same value. Every event belongs to exactly one batch.
type Batch struct {
	// ID is the cause of the batch's first member: unique, because that
	// event is in no other batch, and for a batch of one event the event's
	// own cause. The sink's identifier derives from ID and Resend.
	ID       string
	Customer string
	// Account is the sink account the batch was last sent to
	// ("stripe:cus_..."), stored by Settle; empty until then, and for
	// batches a ledger recorded before it kept accounts. Reconciling
	// compares a batch with the account it was billed to, not with the
	// customer's account of today.
	Account string
	// Timestamp is what the sink is told the usage happened at: the latest
	// servedAt among the members, so it lies in the batch's window (and in
	// the same UTC hour as every member).
	Timestamp time.Time
	// Bytes is the members' total, Events their number.
	Bytes  int64
	Events int
	// Resend counts the times a redrive sent the batch again after the sink
	// had accepted and then rejected it: Stripe keeps an identifier for 24
	// hours even when it rejected the event, so each resend goes under a new
	// identifier derived from ID and Resend.
	Resend int
	State  State
	// Reason says why a batch is unbillable, failed or rejected.
	Reason     string
	RecordedAt time.Time
	UpdatedAt  time.Time
}

// BatchRule is how Ledger.Record gathers new events into batches.
type BatchRule struct {
	// Window is the UTC window a batch's events are served in (it must
	// divide an hour, so a batch never straddles an hour or a month); zero
	// makes each event its own batch.
	Window time.Duration
	// MaxBytes caps one batch's total (the sink's MaxValue); zero is no cap
	// beyond int64.
	MaxBytes int64
	// MaxEvents caps one batch's members; zero is no cap. A ledger may cap
	// lower still (a DynamoDB transaction holds at most 100 items).
	MaxEvents int
}

// CheckWindow checks an aggregation window: positive, whole seconds, and
// dividing an hour, so that windows line up with Stripe's hourly summaries.
func CheckWindow(d time.Duration) error {
	if d <= 0 || d > time.Hour || d%time.Second != 0 || time.Hour%d != 0 {
		return fmt.Errorf("aggregation window %v must be whole seconds dividing an hour (1m, 5m, 15m, 1h ...)", d)
	}
	return nil
}

// WindowOf is the start of the UTC window t falls in; a zero window is t itself.
func WindowOf(t time.Time, window time.Duration) time.Time {
	if window <= 0 {
		return t.UTC()
	}
	return t.UTC().Truncate(window)
}

// FormBatches gathers events (new to the ledger, in the order given) into
// batches under rule, each member cap at most maxEvents (0: rule's cap only).
// Events of one customer and window go into one batch, in order, until a cap
// is reached; then the next batch of that window starts. Each batch comes
// with its members. Ledgers call it inside Record so that both build batches
// the same way.
func FormBatches(evs []Event, rule BatchRule, maxEvents int) []FormedBatch {
	if rule.MaxEvents > 0 && (maxEvents <= 0 || rule.MaxEvents < maxEvents) {
		maxEvents = rule.MaxEvents
	}
	maxBytes := rule.MaxBytes
	if maxBytes <= 0 {
		maxBytes = math.MaxInt64
	}
	type key struct {
		customer string
		window   time.Time
	}
	open := make(map[key]int) // the batch of each key still taking members
	var out []FormedBatch
	for _, ev := range evs {
		k := key{ev.Customer, WindowOf(ev.ServedAt, rule.Window)}
		i, ok := open[k]
		if ok && rule.Window > 0 {
			b := &out[i]
			full := (maxEvents > 0 && b.Events >= maxEvents) || ev.Bytes > maxBytes-b.Bytes
			if !full {
				b.Members = append(b.Members, ev)
				b.Bytes += ev.Bytes
				b.Events++
				if ev.ServedAt.After(b.Timestamp) {
					b.Timestamp = ev.ServedAt.UTC()
				}
				continue
			}
		}
		open[k] = len(out)
		out = append(out, FormedBatch{
			Batch:   Batch{ID: ev.Cause, Customer: ev.Customer, Timestamp: ev.ServedAt.UTC(), Bytes: ev.Bytes, Events: 1, State: Pending},
			Members: []Event{ev},
		})
	}
	return out
}

// FormedBatch is a batch with its member events, as FormBatches makes it.
type FormedBatch struct {
	Batch
	Members []Event
}

// Settlement is a batch's outcome at the sink, for Ledger.Settle.
type Settlement struct {
	// Batch is the batch as the ledger returned it, with the Resend it was
	// sent under.
	Batch  Batch
	State  State
	Reason string
}
