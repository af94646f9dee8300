package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeadLetter is a message a queue set aside after too many deliveries
// without an ack (or because it could not be read): the event is still
// unbilled, and waits for an operator to look at it and requeue it.
type DeadLetter struct {
	// ID names the message to Requeue: a row ID (embedded), an SQS message ID.
	ID string `json:"id"`
	// Receives is how often it was delivered before it was set aside.
	Receives int `json:"receives"`
	// EnqueuedAt is when it was first queued; DeadAt when it was set aside
	// (zero where the queue does not say).
	EnqueuedAt time.Time `json:"enqueuedAt"`
	DeadAt     time.Time `json:"deadAt,omitzero"`
	// Event is the message decoded; Problem says why it could not be, with
	// Body the raw message then.
	Event   *Event `json:"event,omitempty"`
	Problem string `json:"problem,omitempty"`
	Body    string `json:"body,omitempty"`
}

// DeadLetterQueue is a Queue whose dead letters an operator can see and put
// back. Both queues egressd ships implement it; a Queue need not.
type DeadLetterQueue interface {
	// DeadLetters counts the messages set aside.
	DeadLetters(ctx context.Context) (int, error)
	// ListDeadLetters returns up to limit of them, oldest first where the
	// queue keeps an order, without changing them.
	ListDeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// Requeue moves the dead letters with these IDs (all of them when ids
	// is empty) back onto the queue, delivered afresh, and returns how many
	// it moved. The ledger counts each cause once, so a message that was
	// billed after all is harmless to requeue.
	Requeue(ctx context.Context, ids []string) (int, error)
}

// DecodeDeadLetter fills dl.Event from body, or dl.Problem and dl.Body when
// body is not an event.
func DecodeDeadLetter(dl *DeadLetter, body []byte) {
	var ev Event
	if err := unmarshalEvent(body, &ev); err != nil {
		dl.Problem = err.Error()
		dl.Body = string(body)
		return
	}
	dl.Event = &ev
}

// NewDeadLetterGauge is the egressd_queue_dead_letters series, read from the
// queue at each scrape: nil when the queue keeps no dead letters it can count.
// Any value above zero is events nobody bills until an operator acts
// (`egressd billing dead-letters`).
func NewDeadLetterGauge(queue Queue) prometheus.Collector {
	dlq, ok := queue.(DeadLetterQueue)
	if !ok {
		return nil
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "egressd_queue_dead_letters",
		Help: "Egress events set aside in the dead-letter queue after too many deliveries: unbilled until requeued.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := dlq.DeadLetters(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
}

// unmarshalEvent decodes a queue message's body as the queues write it.
func unmarshalEvent(body []byte, ev *Event) error {
	if err := json.Unmarshal(body, ev); err != nil {
		return fmt.Errorf("not an event: %w", err)
	}
	if ev.Cause == "" {
		return errors.New("not an event: no cause")
	}
	return nil
}
