package billing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/egressd/egressd/customers"
)

// settle decides an event's ledger state: it finds the customer's account
// and reports the event, retrying with backoff up to MaxTries. The error is
// only for a failed account lookup or a cancelled ctx; then nothing was
// decided and the event must be settled again later.
func (w *Worker) settle(ctx context.Context, ev Event) (State, string, error) {
	account, err := w.accounts.Account(ctx, ev.Customer)
	if errors.Is(err, customers.ErrNotFound) {
		return Unbillable, fmt.Sprintf("customer %s is unknown", ev.Customer), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("finding the account of %s: %w", ev.Customer, err)
	}
	if account == "" {
		return Unbillable, ReasonNoAccount, nil
	}
	if w.cfg.Reporter == nil {
		return Unbillable, ReasonNoKey, nil
	}
	for try := 1; ; try++ {
		err := w.cfg.Reporter.Report(ctx, account, ev)
		if err == nil {
			w.metrics.stripeCalls.WithLabelValues("ok").Inc()
			return Reported, "", nil
		}
		if ctx.Err() != nil {
			w.metrics.stripeCalls.WithLabelValues("canceled").Inc()
			return "", "", ctx.Err()
		}
		retry, after, reason := classify(err)
		if !retry {
			w.metrics.stripeCalls.WithLabelValues("rejected").Inc()
			return Unbillable, reason, nil
		}
		w.metrics.stripeCalls.WithLabelValues("retryable").Inc()
		if try >= w.cfg.MaxTries {
			return Failed, fmt.Sprintf("gave up after %d tries: %s", try, reason), nil
		}
		delay := w.backoff(try, after)
		w.log.Info("stripe call failed, retrying", "cause", ev.Cause, "try", try, "in", delay, "reason", reason)
		if err := sleep(ctx, delay); err != nil {
			return "", "", err
		}
	}
}

// backoff is the wait before try+1: exponential from BackoffBase, capped at
// BackoffMax, with jitter so that workers hit by the same outage do not
// retry in lockstep. A wait asked for by the provider is honoured.
func (w *Worker) backoff(try int, asked time.Duration) time.Duration {
	d := w.cfg.BackoffBase << min(try-1, 30)
	if d <= 0 || d > w.cfg.BackoffMax {
		d = w.cfg.BackoffMax
	}
	// "Equal jitter": at least half the step, so backoff still grows.
	d = d/2 + rand.N(d/2+1)
	return max(d, asked)
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

// serially runs fn holding customer's lock, one of the Concurrency slots,
// and the customer's lock shared with other workers when there is one:
// Stripe allows one meter-event call per customer at a time, and keeping
// them apart here avoids the 429s it would answer otherwise.
func (w *Worker) serially(ctx context.Context, customer string, fn func(ctx context.Context)) error {
	unlock, err := w.locks.lock(ctx, customer)
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
	if w.cfg.CustomerLock != nil {
		held, unlockShared, err := w.cfg.CustomerLock.Lock(ctx, customer)
		if err != nil {
			w.metrics.errors.WithLabelValues("customer_lock").Inc()
			w.log.Error("locking a customer across workers; its events go back on the queue", "customer", customer, "err", err)
			return err
		}
		defer unlockShared()
		ctx = held
	}
	fn(ctx)
	return nil
}

// customerLocks is a mutex per customer, kept only while someone holds or
// waits for it.
type customerLocks struct {
	mu sync.Mutex
	m  map[string]*customerLock
}

type customerLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

func (l *customerLocks) lock(ctx context.Context, customer string) (unlock func(), err error) {
	l.mu.Lock()
	cl, ok := l.m[customer]
	if !ok {
		cl = &customerLock{ch: make(chan struct{}, 1)}
		l.m[customer] = cl
	}
	cl.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		cl.refs--
		if cl.refs == 0 {
			delete(l.m, customer)
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
