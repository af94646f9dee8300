package billing_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// outageLock is a CustomerLock whose store is unreachable until the outage
// ends, as DynamoDB throttling the lock item would be.
type outageLock struct {
	until time.Time
	tries atomic.Int32
}

func (l *outageLock) Lock(ctx context.Context, account string) (context.Context, func(), error) {
	l.tries.Add(1)
	if time.Now().Before(l.until) {
		return nil, nil, errors.New("locking: ThrottlingException (simulated)")
	}
	return ctx, func() {}, nil
}

// TestLockOutageNeverKeepsEventsOutOfTheLedger: while the lock shared by
// workers cannot be taken, events are still recorded (the lock is only for
// the Stripe call), and their messages wait out their lease instead of
// going round the queue at once, which would use up the queue's receive
// limit and dead-letter them in a second. Once the lock is back, every event
// is billed once.
func TestLockOutageNeverKeepsEventsOutOfTheLedger(t *testing.T) {
	h := newHarness(t, time.Second)
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 5)
	cfg := h.config(h.sink(t, 1000))
	cfg.Visibility = time.Second
	lock := &outageLock{until: time.Now().Add(2 * time.Second)}
	cfg.CustomerLock = lock
	runUntil(t, newWorker(t, cfg), h.settled(t))

	dead, err := h.queue.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dead > 0 {
		t.Fatalf("a 2 s lock outage (%d lock attempts) dead-lettered %d events", lock.tries.Load(), dead)
	}
	if tries := lock.tries.Load(); tries > 10 {
		t.Errorf("%d lock attempts in a 2 s outage: messages went round the queue without waiting", tries)
	}
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
}

// TestCustomersSharingAStripeCustomerTakeTurns: Stripe's one-call rule is
// per Stripe customer, which two of egressd's customers may share (one
// company, two accounts): their calls must not overlap either.
func TestCustomersSharingAStripeCustomerTakeTurns(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	h.spread = time.Minute // one event a window: a call each
	h.fake.SetDelay(20 * time.Millisecond)
	accounts := map[string]string{}
	for _, name := range []string{"a", "b"} {
		c := h.customer(t, name, "stripe:cus_shared")
		accounts[c] = "stripe:cus_shared"
		h.enqueue(t, c, 10)
	}
	runUntil(t, newWorker(t, h.config(h.sink(t, 1000))), h.settled(t))
	if got, n := h.fake.MaxInFlightPerCustomer(), len(h.fake.RateLimited()); got != 1 || n != 0 {
		t.Fatalf("Stripe saw %d calls open at once for cus_shared and answered %d of them 429", got, n)
	}
	h.checkExactlyOnce(t, accounts)
}
