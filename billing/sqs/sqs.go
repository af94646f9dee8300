// Package sqs is the billing.Queue on Amazon SQS, for servers and workers
// that run as separate processes on separate machines.
//
// Each event is one message whose body is the event as JSON (the encoding the
// embedded queue uses). The queue must be a standard queue with a redrive
// policy to a dead-letter queue (internal/awsinit sets one up): a message
// that cannot be decoded, or that keeps failing, is left to the redrive
// policy rather than deleted, so it is parked where an operator sees it.
//
// Enqueue coalesces the events of concurrent callers into SendMessageBatch
// calls of up to 10 messages (batch.go); Receive long-polls and gathers as
// many messages as asked for over several ReceiveMessage calls; Ack deletes
// in batches.
package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/egressd/egressd/billing"
)

// SQS limits.
const (
	maxBatch          = 10               // entries in a SendMessageBatch, DeleteMessageBatch, messages in a ReceiveMessage
	maxBatchBytes     = 256 << 10        // bodies in a SendMessageBatch (and so one message), on queues made before SQS allowed 1 MiB
	maxLongPoll       = 20 * time.Second // WaitTimeSeconds
	maxVisibility     = 12 * time.Hour   // VisibilityTimeout
	defaultLinger     = 2 * time.Millisecond
	defaultInFlight   = 16
	defaultVisibility = 60 * time.Second
	sendAttempts      = 5 // SendMessageBatch calls for one entry that SQS keeps failing
	sendCallTimeout   = 30 * time.Second
	sendRetryBackoff  = 50 * time.Millisecond
)

// Options tunes a Queue; zero values take the defaults.
type Options struct {
	// Visibility is how long a received message stays leased (default 60 s;
	// SQS counts whole seconds, at most 12 h).
	Visibility time.Duration
	// Linger is how long Enqueue waits for other callers' events to fill a
	// SendMessageBatch call (default 2 ms). Negative sends at once.
	Linger time.Duration
	// InFlight bounds the concurrent SendMessageBatch and DeleteMessageBatch
	// calls (default 16).
	InFlight int
	// Log reports messages Receive cannot decode (default: discard).
	Log *slog.Logger
}

// Queue is the SQS billing.Queue. Close it to stop its batching goroutine.
type Queue struct {
	client *sqs.Client
	url    string
	opts   Options

	requests  chan *request // to the batcher
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	batcher   sync.WaitGroup // the batching goroutine and the sends it started
}

var _ billing.Queue = (*Queue)(nil)

// Open finds the queue named name and returns a Queue on it.
func Open(ctx context.Context, client *sqs.Client, name string, opts Options) (*Queue, error) {
	out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		var missing *types.QueueDoesNotExist
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("opening queue %s: it does not exist (create it with `egressd aws init`): %w", name, err)
		}
		return nil, fmt.Errorf("opening queue %s: %w", name, err)
	}
	return New(client, aws.ToString(out.QueueUrl), opts), nil
}

// New returns a Queue on the queue at url, exactly as SQS returned it from
// CreateQueue or GetQueueUrl (stand-ins such as fauxqs use URLs that do not
// follow AWS's pattern).
func New(client *sqs.Client, url string, opts Options) *Queue {
	if opts.Visibility <= 0 {
		opts.Visibility = defaultVisibility
	}
	if opts.Linger == 0 {
		opts.Linger = defaultLinger
	}
	if opts.InFlight <= 0 {
		opts.InFlight = defaultInFlight
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		client:   client,
		url:      url,
		opts:     opts,
		requests: make(chan *request),
		closing:  make(chan struct{}),
	}
	q.batcher.Add(1)
	go q.batch()
	return q
}

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// Close sends what Enqueue has accepted, waits for those calls, and makes
// later Enqueue calls fail with billing.ErrClosed.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() { close(q.closing) })
	q.batcher.Wait()
	return nil
}

// Enqueue sends the events, sharing SendMessageBatch calls with concurrent
// callers. It returns nil when SQS has stored every event. SQS has no
// transactions, so on an error some events may have been stored: the ledger
// counts each cause once, so enqueueing them again is safe. An event is also
// sent when ctx ends while its call is under way.
func (q *Queue) Enqueue(ctx context.Context, events ...billing.Event) error {
	if len(events) == 0 {
		return nil
	}
	req := &request{bodies: make([]string, len(events)), left: len(events), done: make(chan struct{})}
	for i, ev := range events {
		body, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("enqueue: encoding event %s: %w", ev.Cause, err)
		}
		if len(body) > maxBatchBytes {
			return fmt.Errorf("enqueue: event %s is %d bytes, more than SQS takes (%d)", ev.Cause, len(body), maxBatchBytes)
		}
		req.bodies[i] = string(body)
	}
	select {
	case q.requests <- req:
	case <-q.closing:
		return billing.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("enqueue: %w", ctx.Err())
	}
	select {
	case <-req.done:
		if req.err != nil {
			return fmt.Errorf("enqueue: %w", req.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("enqueue: %w", ctx.Err())
	}
}

// Receive leases up to limit messages. It long-polls until one arrives or
// wait has passed (SQS waits in whole seconds, so a wait that is not one may
// run up to a second longer), then gathers more without waiting. A wait of
// zero takes the queue's own ReceiveMessageWaitTimeSeconds, which awsinit
// leaves at zero.
func (q *Queue) Receive(ctx context.Context, limit int, wait time.Duration) ([]billing.Message, error) {
	if limit <= 0 {
		limit = maxBatch
	}
	deadline := time.Now().Add(wait)
	var msgs []billing.Message
	for {
		waitSeconds := int32(0)
		if len(msgs) == 0 {
			waitSeconds = int32(math.Ceil(min(time.Until(deadline), maxLongPoll).Seconds()))
		}
		want := min(maxBatch, limit-len(msgs))
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.url),
			MaxNumberOfMessages:         int32(want),
			WaitTimeSeconds:             max(waitSeconds, 0),
			VisibilityTimeout:           seconds(q.opts.Visibility),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			if len(msgs) > 0 {
				// These are leased already: hand them out, the error will
				// show again on the next call if it lasts.
				return msgs, nil
			}
			return nil, fmt.Errorf("receive: %w", err)
		}
		for _, m := range out.Messages {
			msg, err := decode(m)
			if err != nil {
				q.opts.Log.Error("undecodable queue message left for the dead-letter queue",
					"queue", q.url, "message", aws.ToString(m.MessageId), "err", err)
				continue
			}
			msgs = append(msgs, msg)
		}
		switch {
		case len(msgs) >= limit:
			return msgs, nil
		case len(msgs) > 0 && len(out.Messages) < want:
			return msgs, nil // drained what is there
		case len(msgs) == 0 && !time.Now().Before(deadline):
			return []billing.Message{}, nil
		}
	}
}

func decode(m types.Message) (billing.Message, error) {
	msg := billing.Message{ID: aws.ToString(m.ReceiptHandle), Receives: 1}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		msg.Receives = n
	}
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg.Event); err != nil {
		return msg, fmt.Errorf("decoding event: %w", err)
	}
	if msg.Event.Cause == "" {
		return msg, errors.New("decoding event: no cause")
	}
	return msg, nil
}

// Extend sets the message's visibility timeout to d from now.
func (q *Queue) Extend(ctx context.Context, msg billing.Message, d time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(msg.ID),
		VisibilityTimeout: seconds(d),
	})
	if err != nil {
		return fmt.Errorf("extend visibility of %s: %w", msg.Event.Cause, err)
	}
	return nil
}

// Ack deletes the messages, in batches of 10 sent concurrently.
func (q *Queue) Ack(ctx context.Context, msgs ...billing.Message) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, q.opts.InFlight)
	)
	for start := 0; start < len(msgs); start += maxBatch {
		chunk := msgs[start:min(start+maxBatch, len(msgs))]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := q.deleteBatch(ctx, chunk); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (q *Queue) deleteBatch(ctx context.Context, msgs []billing.Message) error {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.ID)}
	}
	out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	var errs []error
	for _, f := range out.Failed {
		cause := "?"
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i < len(msgs) {
			cause = msgs[i].Event.Cause
		}
		errs = append(errs, fmt.Errorf("ack %s: %s: %s", cause, aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return errors.Join(errs...)
}

// Depth is the number of messages waiting, delayed or leased (SQS's
// approximate counts).
func (q *Queue) Depth(ctx context.Context) (int, error) {
	n, err := q.count(ctx, q.url)
	if err != nil {
		return 0, fmt.Errorf("queue depth: %w", err)
	}
	return n, nil
}

// count adds up SQS's approximate counts of the queue at url.
func (q *Queue) count(ctx context.Context, url string) (int, error) {
	names := []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: names})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, name := range names {
		if v, ok := out.Attributes[string(name)]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("%s = %q", name, v)
			}
			total += n
		}
	}
	return total, nil
}

// seconds converts d to SQS's whole seconds, rounding up, within 0..12 h.
func seconds(d time.Duration) int32 {
	d = min(max(d, 0), maxVisibility)
	return int32(math.Ceil(d.Seconds()))
}
