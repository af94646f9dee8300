package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/egressd/egressd/internal/backoff"
)

// outcomeOf is a batch's settlement, or err when nothing was decided (an
// account lookup failed or ctx ended) and the batch must be settled later.
type outcomeOf struct {
	Settlement
	err error
}

// bill decides the ledger state of each batch: it finds each customer's
// account and sends the billable batches to the sink, at most MaxCharges per
// call, retrying with backoff up to MaxTries. The result has one outcome per
// batch, in order.
func (w *Worker) bill(ctx context.Context, batches []Batch) []outcomeOf {
	out := make([]outcomeOf, len(batches))
	var charges []Charge
	var index []int // charges[k] is batches[index[k]]
	for i, b := range batches {
		out[i].Batch = b
		account, err := w.accounts.Account(ctx, b.Customer)
		switch {
		case errors.Is(err, ErrUnknownCustomer):
			out[i].State, out[i].Reason = Unbillable, fmt.Sprintf("customer %s is unknown", b.Customer)
		case err != nil:
			out[i].err = fmt.Errorf("finding the account of %s: %w", b.Customer, err)
		case account == "":
			out[i].State, out[i].Reason = Unbillable, ReasonNoAccount
		case w.cfg.Sink == nil:
			out[i].State, out[i].Reason = Unbillable, ReasonNoSink
		default:
			out[i].Batch.Account = account
			charges = append(charges, Charge{Account: account, Batch: out[i].Batch})
			index = append(index, i)
		}
	}
	// A sink with a per-customer rule takes one charge a call, one call at
	// a time (a lane is one customer); otherwise the round's calls go out
	// together, up to Concurrency at once, so a lane holding one busy
	// customer's thousand events does not wait for ten calls in a row.
	parallel := 1
	if !w.limits.OneCallPerCustomer {
		parallel = w.cfg.Concurrency
	}
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for start := 0; start < len(charges); start += w.limits.MaxCharges {
		end := min(start+w.limits.MaxCharges, len(charges))
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			for k, o := range w.charge(ctx, charges[start:end]) {
				o.Batch = out[index[start+k]].Batch
				out[index[start+k]] = o
			}
		}()
	}
	wg.Wait()
	return out
}

// charge sends charges to the sink until each is accepted, refused for good,
// or has been tried MaxTries times.
func (w *Worker) charge(ctx context.Context, charges []Charge) []outcomeOf {
	out := make([]outcomeOf, len(charges))
	reasons := make([]string, len(charges))
	todo := make([]int, len(charges))
	for i := range todo {
		todo[i] = i
	}
	sink := w.cfg.Sink.Name()
	for try := 1; ; try++ {
		send := make([]Charge, len(todo))
		for k, i := range todo {
			send[k] = charges[i]
		}
		errs, err := w.report(ctx, send)
		if err != nil {
			// The account could not be locked: nothing was sent, nothing
			// is decided; the batches stay pending and are sent again
			// when their messages come back.
			for _, i := range todo {
				out[i].err = err
			}
			return out
		}
		var again []int
		var asked time.Duration
		for k, i := range todo {
			var err error
			if k < len(errs) {
				err = errs[k]
			} else {
				err = errors.New("the sink gave no answer for this charge")
			}
			switch {
			case err == nil:
				w.metrics.sinkCharges.WithLabelValues(sink, "ok").Inc()
				out[i].State = Reported
			case ctx.Err() != nil:
				w.metrics.sinkCharges.WithLabelValues(sink, "canceled").Inc()
				out[i].err = ctx.Err()
			default:
				retry, after, reason := classify(err)
				if !retry {
					w.metrics.sinkCharges.WithLabelValues(sink, "refused").Inc()
					out[i].State, out[i].Reason = Unbillable, reason
					continue
				}
				w.metrics.sinkCharges.WithLabelValues(sink, "retryable").Inc()
				reasons[i] = reason
				asked = max(asked, after)
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return out
		}
		if try >= w.cfg.MaxTries {
			for _, i := range again {
				out[i].State, out[i].Reason = Failed, fmt.Sprintf("gave up after %d tries: %s", try, reasons[i])
			}
			return out
		}
		delay := w.backoff(try, asked)
		w.log.Info("sink call failed, retrying", "sink", sink, "charges", len(again), "first", charges[again[0]].Batch.ID, "try", try, "in", delay, "reason", reasons[again[0]])
		if err := sleep(ctx, delay); err != nil {
			for _, i := range again {
				out[i].err = err
			}
			return out
		}
		todo = again
	}
}

// backoff is the wait before try+1: exponential from BackoffBase, capped at
// BackoffMax, with jitter so that workers hit by the same outage do not
// retry in lockstep. A wait asked for by the sink is honoured.
func (w *Worker) backoff(try int, asked time.Duration) time.Duration {
	return backoff.Policy{Base: w.cfg.BackoffBase, Max: w.cfg.BackoffMax}.Delay(try, asked)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// report calls the sink. For a sink that takes one call per customer at a
// time (MaxCharges is then 1), it holds the account's lock for the call:
// this process's, and every worker's when there is a CustomerLock. The lock
// is the account's, not the customer's, because the sink's rule is about its
// own customers, which two of ours may share; and it is taken only around
// the call, after the round is recorded, so a lock that cannot be had
// delays billing but never keeps events out of the ledger. err is set when
// the lock could not be had; nothing was sent then.
func (w *Worker) report(ctx context.Context, charges []Charge) ([]error, error) {
	if !w.limits.OneCallPerCustomer {
		return w.cfg.Sink.Report(ctx, charges), nil
	}
	account := charges[0].Account
	unlock, err := w.locks.lock(ctx, "account "+account)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if w.cfg.CustomerLock != nil {
		held, unlockShared, err := w.cfg.CustomerLock.Lock(ctx, account)
		if err != nil {
			w.metrics.errors.WithLabelValues("customer_lock").Inc()
			w.log.Error("locking an account across workers; its batches are sent when their events come back", "account", account, "err", err)
			return nil, fmt.Errorf("locking %s across workers: %w", account, err)
		}
		defer unlockShared()
		ctx = held
	}
	return w.cfg.Sink.Report(ctx, charges), nil
}

// serially runs fn holding lane's lock and one of the Concurrency slots.
func (w *Worker) serially(ctx context.Context, lane string, fn func(ctx context.Context)) error {
	unlock, err := w.locks.lock(ctx, lane)
	if err != nil {
		return err
	}
	defer unlock()
	select {
	case w.active <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.active }()
	fn(ctx)
	return nil
}

// namedLocks is a mutex per name (a lane, an account), kept only while
// someone holds or waits for it.
type namedLocks struct {
	mu sync.Mutex
	m  map[string]*namedLock
}

type namedLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

func (l *namedLocks) lock(ctx context.Context, name string) (unlock func(), err error) {
	l.mu.Lock()
	cl, ok := l.m[name]
	if !ok {
		cl = &namedLock{ch: make(chan struct{}, 1)}
		l.m[name] = cl
	}
	cl.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		cl.refs--
		if cl.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
	select {
	case cl.ch <- struct{}{}:
		return func() { <-cl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
