package billing

import (
	"context"
	"time"
)

// The worker holds every message it received (leased, invisible to other
// workers) until it is settled. These keep those leases alive while events
// wait for their customer or for the sink, and hand them back on shutdown.

// giveBack makes a message visible again at once, for another worker.
func (w *Worker) giveBack(msg Message) {
	w.untrack(msg)
	w.extending.Lock()
	defer w.extending.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.cfg.Queue.Extend(ctx, msg, 0); err != nil {
		w.log.Warn("returning a message to the queue; it reappears when its lease ends", "cause", msg.Event.Cause, "err", err)
	}
}

func (w *Worker) track(msgs ...Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range msgs {
		w.leased[m.ID] = m
	}
	w.metrics.leased.Set(float64(len(w.leased)))
}

func (w *Worker) untrack(msg Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.leased, msg.ID)
	w.metrics.leased.Set(float64(len(w.leased)))
}

// extendLeases keeps the messages this worker holds invisible to other
// workers while they wait for their customer or for the sink.
func (w *Worker) extendLeases(ctx context.Context) {
	t := time.NewTicker(w.cfg.Visibility / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		held := make([]Message, 0, len(w.leased))
		for _, m := range w.leased {
			held = append(held, m)
		}
		w.mu.Unlock()
		// Each extension is a write; holding extending (not mu) while they
		// run lets events complete meanwhile, and keeps a message handed
		// back by giveBack from being hidden again by a late extension.
		w.extending.Lock()
		for _, m := range held {
			if !w.isLeased(m) {
				continue // settled or handed back since the snapshot
			}
			if err := w.cfg.Queue.Extend(ctx, m, w.cfg.Visibility); err != nil && ctx.Err() == nil {
				w.metrics.errors.WithLabelValues("extend").Inc()
				w.log.Warn("extending a message's lease", "cause", m.Event.Cause, "err", err)
			}
		}
		w.extending.Unlock()
	}
}

func (w *Worker) isLeased(m Message) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.leased[m.ID]
	return ok
}
