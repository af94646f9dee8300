package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/egressd/egressd/internal/backoff"
)

// request is one Enqueue call waiting for its events to be sent.
type request struct {
	bodies []string

	mu   sync.Mutex
	left int   // bodies not settled yet
	err  error // the first failure
	done chan struct{}
}

// settle records the outcome of one of the request's bodies.
func (r *request) settle(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.err == nil {
		r.err = err
	}
	r.left--
	if r.left == 0 {
		close(r.done)
	}
}

// entry is one message body on its way into a SendMessageBatch call.
type entry struct {
	body string
	req  *request
}

// batch is the batching goroutine: it gathers the bodies of Enqueue calls
// into batches of up to 10 messages and 256 KiB and hands each to a sender.
// A batch leaves when it is full or when its first body has waited Linger. While every sender is
// busy it stops taking requests, so a burst fills the next batches instead of
// queueing unboundedly.
func (q *Queue) batch() {
	defer q.batcher.Done()
	senders := make(chan struct{}, q.opts.InFlight)
	var (
		pending      []entry
		pendingBytes int
		linger       *time.Timer
		expired      <-chan time.Time
	)
	send := func() {
		if len(pending) > 0 {
			q.dispatch(senders, pending)
		}
		pending, pendingBytes = nil, 0
	}
	take := func(req *request) {
		for _, b := range req.bodies {
			if len(pending) == maxBatch || pendingBytes+len(b) > maxBatchBytes {
				send()
			}
			pending = append(pending, entry{body: b, req: req})
			pendingBytes += len(b)
		}
		if len(pending) == maxBatch || q.opts.Linger < 0 {
			send()
		}
		switch {
		case len(pending) == 0 && linger != nil:
			linger.Stop()
			linger, expired = nil, nil
		case len(pending) > 0 && linger == nil:
			linger = time.NewTimer(q.opts.Linger)
			expired = linger.C
		}
	}
	for {
		select {
		case req := <-q.requests:
			take(req)
		case <-expired:
			linger, expired = nil, nil
			send()
		case <-q.closing:
			if linger != nil {
				linger.Stop()
			}
			send()
			return
		}
	}
}

// dispatch starts a sender for entries once one is free.
func (q *Queue) dispatch(senders chan struct{}, entries []entry) {
	senders <- struct{}{}
	q.batcher.Add(1)
	go func() {
		defer q.batcher.Done()
		defer func() { <-senders }()
		q.send(entries)
	}()
}

// sendBackoff is the wait before sending again what SQS failed on its side:
// up to 2×sendRetryBackoff after the first call, doubling with each one, so
// the retries of many senders do not land together.
var sendBackoff = backoff.Policy{Base: 2 * sendRetryBackoff, Max: sendRetryBackoff << (sendAttempts - 1)}

// send stores entries with SendMessageBatch and settles each one. Entries
// SQS fails on its side are sent again, a few times, with backoff; entries it
// rejects as malformed, and entries of a call that fails outright (after the
// SDK's own retries), fail their Enqueue call.
func (q *Queue) send(entries []entry) {
	for attempt := 1; len(entries) > 0; attempt++ {
		retry, err := q.sendOnce(entries, attempt == sendAttempts)
		if err != nil {
			for _, e := range entries {
				e.req.settle(err)
			}
			return
		}
		entries = retry
		if len(entries) > 0 {
			// Not a caller's context, as in sendOnce: the batch is shared.
			time.Sleep(sendBackoff.Delay(attempt, 0))
		}
	}
}

// sendOnce makes one SendMessageBatch call, settles the entries that succeed
// or fail for good, and returns those worth another try (none when last).
func (q *Queue) sendOnce(entries []entry, last bool) ([]entry, error) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: make([]types.SendMessageBatchRequestEntry, len(entries))}
	for i, e := range entries {
		in.Entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(e.body)}
	}
	// Not the callers' contexts: the batch is shared, and a caller that
	// gives up must not fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), sendCallTimeout)
	defer cancel()
	out, err := q.client.SendMessageBatch(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("sending %d messages: %w", len(entries), err)
	}
	settled := make([]bool, len(entries))
	for _, ok := range out.Successful {
		if i, known := index(ok.Id, len(entries)); known && !settled[i] {
			settled[i] = true
			entries[i].req.settle(nil)
		}
	}
	var retry []entry
	for _, f := range out.Failed {
		i, known := index(f.Id, len(entries))
		if !known || settled[i] {
			continue
		}
		settled[i] = true
		if f.SenderFault || last {
			entries[i].req.settle(fmt.Errorf("SQS refused a message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
			continue
		}
		retry = append(retry, entries[i])
	}
	for i, done := range settled {
		if !done {
			// SQS must report every entry; an entry it does not mention
			// may or may not be stored, so its caller must try again.
			entries[i].req.settle(errors.New("SQS did not report the outcome of a message"))
		}
	}
	return retry, nil
}

func index(id *string, n int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	return i, err == nil && i >= 0 && i < n
}
