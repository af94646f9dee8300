package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// RedriveFilter selects the ledger entries to send again.
type RedriveFilter struct {
	// States to redrive; empty is unbillable and failed. Pending is allowed,
	// for entries whose queue message was lost to the dead-letter table,
	// and rejected, once the customer or meter the sink missed exists.
	States []State
	// Customer narrows the redrive to one customer; empty is all.
	Customer string
	// Reason narrows it to batches settled with this reason (the operator
	// console re-drives one group of problems); empty is any.
	Reason string
	// Force sends failed and pending batches again even when they were last
	// sent longer ago than ResendWindow (see Redrive).
	Force bool
	// Now is the clock; nil is the worker's.
	Now func() time.Time
}

// ResendWindow is how long after a failed or pending batch was last sent a
// redrive still sends it again by default. The sink may hold such a batch
// (Stripe counted the event and its answer was lost), and Stripe forgets an
// identifier 24 hours after it took it: sent again later, the batch would be
// counted twice. Past the window, check with `billing reconcile` first.
const ResendWindow = 23 * time.Hour

// RedriveResult counts what a redrive did.
type RedriveResult struct {
	// Settled counts redriven entries (events) by the state they ended in.
	Settled map[State]int
	// Errors counts entries left as they were because a store failed.
	Errors int
	// Held counts entries of failed or pending batches last sent more than
	// ResendWindow ago, left as they were (see RedriveFilter.Force).
	Held int
	// Repaired counts the events of batches whose members were brought back
	// into line with them (a redrive or worker stopped half way through
	// settling one).
	Repaired int
}

// Redrive settles the batches of the selected entries again, like new ones,
// once their cause is fixed (a billing account set, a sink configured, the
// sink back up, a customer the sink did not know created). A batch goes with
// the same identifier and value as before, so a batch the sink already has
// is not counted twice while the sink remembers the identifier; a failed or
// pending batch last sent longer ago than ResendWindow is therefore held
// back unless f.Force. Only a rejected batch goes under a new identifier
// (the sink keeps a rejected one taken). Members found out of line with
// their settled batch are repaired. Monthly totals do not change: they
// counted the events when they were first recorded.
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
	tally := func(state State, events int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors += events
			return
		}
		res.Settled[state] += events
	}

	now := w.cfg.Now
	if f.Now != nil {
		now = f.Now
	}
	seen := make(map[string]bool)  // batches already redriven
	asked := make(map[string]bool) // customers whose account is asked afresh
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

		byLane := make(map[string][]Batch)
		var repair []Settlement
		repairs := 0
		for _, e := range page {
			if seen[e.Batch] {
				continue
			}
			seen[e.Batch] = true
			b, err := w.cfg.Ledger.Batch(ctx, e.Batch)
			if err != nil {
				w.log.Error("redrive: batch left as it was", "batch", e.Batch, "err", err)
				tally("", 1, err)
				continue
			}
			if b.State != e.State {
				// The batch is settled and this member was left behind:
				// bring the members into line, send nothing.
				repair = append(repair, Settlement{Batch: b, State: b.State, Reason: b.Reason})
				repairs += b.Events
				continue
			}
			if !slices.Contains(states, b.State) || (f.Reason != "" && b.Reason != f.Reason) {
				continue
			}
			if (b.State == Failed || b.State == Pending) && !f.Force && now().Sub(b.UpdatedAt) > ResendWindow {
				w.log.Warn("redrive: batch last sent too long ago to send again safely; check with billing reconcile, then redrive with force",
					"batch", b.ID, "customer", b.Customer, "state", b.State, "updated", b.UpdatedAt)
				mu.Lock()
				res.Held += b.Events
				mu.Unlock()
				continue
			}
			if !asked[b.Customer] {
				// The operator redrives because a cause was fixed, often an
				// account just set: ask for it afresh, not from the cache.
				w.accounts.Forget(b.Customer)
				asked[b.Customer] = true
			}
			lane := w.lane(b.Customer)
			byLane[lane] = append(byLane[lane], b)
		}
		if len(repair) > 0 {
			if err := w.cfg.Ledger.Settle(ctx, repair...); err != nil {
				w.log.Error("redrive: members left out of line with their batch", "err", err)
				tally("", repairs, err)
			} else {
				res.Repaired += repairs
			}
		}
		var wg sync.WaitGroup
		for lane, batches := range byLane {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := w.serially(ctx, lane, func(ctx context.Context) {
					w.redriveBatches(ctx, batches, tally)
				})
				if err != nil {
					for _, b := range batches {
						tally("", b.Events, err)
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

// redriveBatches sends batches again and stores their outcomes.
func (w *Worker) redriveBatches(ctx context.Context, batches []Batch, tally func(State, int, error)) {
	from := make(map[string]State, len(batches))
	for i := range batches {
		from[batches[i].ID] = batches[i].State
		if batches[i].State == Rejected {
			// The sink holds the rejected identifier and would refuse it
			// as a duplicate, so the batch goes under the next resend's
			// identifier. The ledger stores that resend with the outcome;
			// a redrive stopped before storing it sends the same resend
			// again next time, which the sink then dedupes.
			batches[i].Resend++
		}
	}
	for _, o := range w.bill(ctx, batches) {
		err := o.err
		if err == nil {
			err = w.cfg.Ledger.Settle(ctx, o.Settlement)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("redrive: batch left as it was", "batch", o.Batch.ID, "err", err)
			}
			tally("", o.Batch.Events, err)
			continue
		}
		w.metrics.events.WithLabelValues(string(o.State)).Add(float64(o.Batch.Events))
		w.log.Info("redriven", "batch", o.Batch.ID, "customer", o.Batch.Customer, "events", o.Batch.Events, "from", from[o.Batch.ID], "to", o.State, "reason", o.Reason)
		tally(o.State, o.Batch.Events, nil)
	}
}
