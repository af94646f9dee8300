package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// RedriveFilter selects the ledger entries to send again.
type RedriveFilter struct {
	// States to redrive; empty is unbillable and failed. Pending is allowed,
	// for entries whose queue message was lost to the dead-letter table,
	// and rejected, once the customer or meter Stripe missed exists.
	States []State
	// Customer narrows the redrive to one customer; empty is all.
	Customer string
}

// RedriveResult counts what a redrive did.
type RedriveResult struct {
	// Settled counts redriven entries by the state they ended in.
	Settled map[State]int
	// Errors counts entries left as they were because a store failed.
	Errors int
}

// Redrive settles the selected entries again, like new events, once their
// cause is fixed (a Stripe account set, a key configured, Stripe back up, a
// customer Stripe did not know created). The Stripe identifier is the same
// as before, so an event Stripe already has is not counted twice; only a
// rejected entry goes under a new one (see redriveOne). Monthly totals do
// not change: they counted the event when it was first recorded.
func (w *Worker) Redrive(ctx context.Context, f RedriveFilter) (RedriveResult, error) {
	res := RedriveResult{Settled: make(map[State]int)}
	states := f.States
	if len(states) == 0 {
		states = []State{Unbillable, Failed}
	}
	if slices.Contains(states, Reported) {
		return res, errors.New("redrive: reported entries are final and are never sent again")
	}

	var mu sync.Mutex
	tally := func(state State, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors++
			return
		}
		res.Settled[state]++
	}

	after := ""
	for {
		// Paging by cause moves strictly forward, so entries that stay
		// unbillable are not picked up again in the same redrive.
		page, err := w.cfg.Ledger.Entries(ctx, EntryFilter{States: states, Customer: f.Customer, After: after, Limit: 100})
		if err != nil {
			return res, fmt.Errorf("redrive: %w", err)
		}
		if len(page) == 0 {
			return res, nil
		}
		after = page[len(page)-1].Cause

		var wg sync.WaitGroup
		for _, group := range groupEntriesByCustomer(page) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := w.serially(ctx, group[0].Customer, func(ctx context.Context) {
					for _, e := range group {
						tally(w.redriveOne(ctx, e))
					}
				})
				if err != nil {
					for range group {
						tally("", err)
					}
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("redrive: %w", err)
		}
	}
}

// redriveOne settles one entry again and records the outcome.
func (w *Worker) redriveOne(ctx context.Context, e Entry) (State, error) {
	ev := e.Event
	if e.State == Rejected {
		// Stripe holds the rejected identifier for 24 hours and would
		// refuse it as a duplicate, so the event goes under the next
		// resend's identifier. The ledger stores that resend with the
		// outcome; a redrive stopped before storing it sends the same
		// resend again next time, which Stripe then dedupes.
		ev.Resend++
	}
	state, reason, err := w.settle(ctx, ev)
	if err == nil {
		err = w.cfg.Ledger.Mark(ctx, ev, state, reason)
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("redrive: entry left as it was", "cause", e.Cause, "err", err)
		}
		return "", err
	}
	w.metrics.events.WithLabelValues(string(state)).Inc()
	w.log.Info("redriven", "cause", e.Cause, "customer", e.Customer, "from", e.State, "to", state, "reason", reason)
	return state, nil
}

// groupEntriesByCustomer splits entries by customer, keeping their order.
func groupEntriesByCustomer(entries []Entry) [][]Entry {
	index := make(map[string]int)
	var groups [][]Entry
	for _, e := range entries {
		i, ok := index[e.Customer]
		if !ok {
			i = len(groups)
			index[e.Customer] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}
