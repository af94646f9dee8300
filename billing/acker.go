package billing

import (
	"context"
	"time"
)

// maxAckBatch bounds the messages acknowledged in one call.
const maxAckBatch = 100

// acker acknowledges settled messages in batches: each acknowledgement is a
// durable write (a commit, an SQS call), and the ones that pile up while one
// is in progress can share the next. Acknowledging late is safe: the ledger
// already holds the outcome, so a message redelivered meanwhile is
// recognised as a duplicate and acknowledged then.
type acker struct {
	w    *Worker
	in   chan Message
	done chan struct{}
}

func (w *Worker) startAcker() *acker {
	a := &acker{w: w, in: make(chan Message, maxAckBatch), done: make(chan struct{})}
	go a.run()
	return a
}

// ack queues msg for acknowledgement.
func (a *acker) ack(msg Message) { a.in <- msg }

// stop acknowledges what is queued and returns.
func (a *acker) stop() {
	close(a.in)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	for msg := range a.in {
		batch := []Message{msg}
		open := true
	gather:
		for open && len(batch) < maxAckBatch {
			select {
			case m, ok := <-a.in:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, m)
			default:
				break gather
			}
		}
		a.flush(batch)
		if !open {
			return
		}
	}
}

func (a *acker) flush(batch []Message) {
	// Its own context: acknowledgements still go out while shutting down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.w.cfg.Queue.Ack(ctx, batch...); err != nil {
		// Redelivered later, found settled, acknowledged then.
		a.w.metrics.errors.WithLabelValues("ack").Inc()
		a.w.log.Error("acknowledging settled events; they will be redelivered and acknowledged as duplicates", "events", len(batch), "err", err)
	}
}
