package dynamodb_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing/dynamodb"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
)

// TTLs short enough for tests. A holder loses the lock when one call takes
// a third of its TTL, and DynamoDB Local here answers some calls in 250 ms:
// a test where a holder must keep the lock gives it keepTTL; shortTTL is
// for tests where the lock changes hands, whose calls may be slow.
const (
	shortTTL = 300 * time.Millisecond
	keepTTL  = 1500 * time.Millisecond
)

// TestCustomerLockIsExclusive: holders on several "machines" (lock values
// of their own) never hold one customer's lock at once, and every one gets
// its turn.
func TestCustomerLockIsExclusive(t *testing.T) {
	client, tables := newTables(t)
	var (
		holding, most atomic.Int32
		turns         atomic.Int32
		wg            sync.WaitGroup
	)
	for range 4 {
		lock := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
		wg.Go(func() {
			for range 5 {
				_, unlock, err := lock.Lock(context.Background(), "did:mailto:example.com:hot")
				if err != nil {
					t.Error(err)
					return
				}
				n := holding.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(10 * time.Millisecond)
				holding.Add(-1)
				turns.Add(1)
				unlock()
			}
		})
	}
	wg.Wait()
	if most.Load() != 1 || turns.Load() != 20 {
		t.Fatalf("at most %d holders at once over %d turns, want 1 over 20", most.Load(), turns.Load())
	}
}

// TestCustomerLockOfADeadHolderIsTakenAfterTTL: a holder that died leaves
// its item, whose version then never changes; a waiter takes it once it has
// watched that version for a TTL on its own clock.
func TestCustomerLockOfADeadHolderIsTakenAfterTTL(t *testing.T) {
	client, tables := newTables(t)
	putItem(t, client, tables.Ledger, map[string]types.AttributeValue{
		"pk": s("lock#did:mailto:example.com:a"), "sk": s("lock"), "owner": s("dead"), "version": s("v1"),
	})
	lock := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	lock.TTL = shortTTL
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, unlock, err := lock.Lock(ctx, "did:mailto:example.com:a")
	if err != nil {
		t.Fatalf("the dead holder's lock was never taken: %v", err)
	}
	unlock()
	if waited := time.Since(start); waited < lock.TTL {
		t.Fatalf("taken after %v, before a TTL of %v", waited, lock.TTL)
	}
}

// TestCustomerLockIgnoresClockSkew (found in review): a machine whose clock
// runs far ahead must not take a live holder's lock.
func TestCustomerLockIgnoresClockSkew(t *testing.T) {
	client, tables := newTables(t)
	holder := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	holder.TTL = keepTTL
	_, unlock, err := holder.Lock(context.Background(), "did:mailto:example.com:a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ahead := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	ahead.TTL = keepTTL
	ahead.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
	ctx, cancel := context.WithTimeout(context.Background(), keepTTL+time.Second)
	defer cancel()
	if _, _, err := ahead.Lock(ctx, "did:mailto:example.com:a"); err == nil {
		t.Fatal("a machine with its clock an hour ahead took a live holder's lock")
	}
}

// TestCustomerLockLostEndsTheHoldersWork (found in review): when the
// holder cannot renew (here another took the item), the context it works
// under ends, so it stops calling Stripe instead of overlapping.
func TestCustomerLockLostEndsTheHoldersWork(t *testing.T) {
	client, tables := newTables(t)
	lock := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	lock.TTL = keepTTL
	held, unlock, err := lock.Lock(context.Background(), "did:mailto:example.com:a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	putItem(t, client, tables.Ledger, map[string]types.AttributeValue{
		"pk": s("lock#did:mailto:example.com:a"), "sk": s("lock"), "owner": s("someone else"), "version": s("x"),
	})
	select {
	case <-held.Done():
	case <-time.After(2 * keepTTL):
		t.Fatal("the holder kept working after losing its lock")
	}
	// At the renewal that found the item taken, not later when it would
	// have expired anyway.
	if cause := context.Cause(held); !strings.Contains(cause.Error(), "renewing") {
		t.Fatalf("the holder's context ended with %v, want its renewal failing", cause)
	}
}

// stallingTransport holds back the next calls of one kind (op, such as
// "UpdateItem": the lock's renewals), as many as stalls says, until
// release is closed; until the call's deadline too when honourDeadline is
// set, as net/http does. With land set, a call held reaches DynamoDB first
// and only its answer is held back. It notes how far off the deadline of
// the first call it held was.
type stallingTransport struct {
	op             string
	honourDeadline bool
	land           bool
	stalls         atomic.Int32
	release        chan struct{}

	mu       sync.Mutex
	deadline time.Duration // -1: the call held had none; 0: none held yet
}

func newStallingTransport(op string, honourDeadline bool) *stallingTransport {
	return &stallingTransport{op: op, honourDeadline: honourDeadline, release: make(chan struct{})}
}

func (tr *stallingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+tr.op) || tr.stalls.Add(-1) < 0 {
		return http.DefaultTransport.RoundTrip(r)
	}
	tr.mu.Lock()
	if tr.deadline == 0 {
		tr.deadline = -1
		if d, ok := r.Context().Deadline(); ok {
			tr.deadline = time.Until(d)
		}
	}
	tr.mu.Unlock()
	var resp *http.Response
	if tr.land {
		var err error
		if resp, err = http.DefaultTransport.RoundTrip(r); err != nil {
			return nil, err
		}
	}
	var expired <-chan struct{}
	if tr.honourDeadline {
		expired = r.Context().Done()
	}
	select {
	case <-tr.release:
	case <-expired:
		if resp != nil {
			resp.Body.Close()
		}
		return nil, r.Context().Err()
	}
	if resp != nil {
		return resp, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// firstDeadline is how far off the first held call's deadline was.
func (tr *stallingTransport) firstDeadline() time.Duration {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.deadline
}

// stallingClient is a DynamoDB client whose calls go through tr.
func stallingClient(t *testing.T, tr *stallingTransport) *awsdynamodb.Client {
	cfg := awstest.Config(t)
	cfg.HTTPClient = &http.Client{Transport: tr}
	return awsconfig.NewDynamoDB(cfg)
}

// TestCustomerLockStalledRenewalEndsTheHold (found in review): a renewal
// that hangs, a slow or throttled DynamoDB call, leaves the item's version
// unchanged, so a waiter takes the lock a TTL after it last changed. The
// holder's context must have ended before then, or both call Stripe for
// the customer at once; and it must, even when the call ignores its
// deadline.
func TestCustomerLockStalledRenewalEndsTheHold(t *testing.T) {
	for _, tc := range []struct {
		name           string
		honourDeadline bool
	}{
		{"the renewal hangs until its deadline", true},
		{"the renewal hangs past its deadline", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, tables := newTables(t)
			const ttl = shortTTL
			tr := newStallingTransport("UpdateItem", tc.honourDeadline)
			holder := dynamodb.NewCustomerLock(stallingClient(t, tr), dynamodb.Tables{Ledger: tables.Ledger})
			holder.TTL = ttl
			held, unlock, err := holder.Lock(context.Background(), "did:mailto:example.com:a")
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			defer close(tr.release)        // first: unlock waits for the renewal in flight
			tr.stalls.Store(math.MaxInt32) // every renewal from now on hangs
			ended := make(chan time.Time, 1)
			go func() {
				<-held.Done()
				ended <- time.Now()
			}()

			waiter := dynamodb.NewCustomerLock(awsconfig.NewDynamoDB(awstest.Config(t)), dynamodb.Tables{Ledger: tables.Ledger})
			waiter.TTL = ttl
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, unlock2, err := waiter.Lock(ctx, "did:mailto:example.com:a")
			if err != nil {
				t.Fatalf("the waiter never took the lock of a holder that cannot renew: %v", err)
			}
			taken := time.Now()
			defer unlock2()
			select {
			case at := <-ended:
				if !at.Before(taken) {
					t.Fatalf("the holder's context ended %v after the waiter took the lock", at.Sub(taken))
				}
			default:
				t.Fatal("two holders of one customer's lock: the waiter took it while the holder's context is live")
			}
			if cause := context.Cause(held); !strings.Contains(cause.Error(), "lost") {
				t.Fatalf("the holder's context ended with %v, want the lock lost", cause)
			}
			if d := tr.firstDeadline(); d <= 0 || d > ttl/3 {
				t.Fatalf("the stalled renewal had %v until its deadline, want at most TTL/3 = %v", d, ttl/3)
			}
		})
	}
}

// TestCustomerLockStaysHeldWhileRenewing: a holder whose renewals go
// through keeps the lock for as long as it works, past a TTL, and no waiter
// takes it meanwhile.
func TestCustomerLockStaysHeldWhileRenewing(t *testing.T) {
	client, tables := newTables(t)
	const ttl = keepTTL
	holder := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	holder.TTL = ttl
	held, unlock, err := holder.Lock(context.Background(), "did:mailto:example.com:a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	waiter := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	waiter.TTL = ttl
	ctx, cancel := context.WithTimeout(context.Background(), 2*ttl)
	defer cancel()
	if _, _, err := waiter.Lock(ctx, "did:mailto:example.com:a"); err == nil {
		t.Fatalf("a waiter took the lock of a holder that renews (the holder: %v)", context.Cause(held))
	}
	if err := context.Cause(held); err != nil {
		t.Fatalf("the holder lost its lock while renewing: %v", err)
	}
}

// TestCustomerLockRetriesAStalledTake: a put of the lock item whose answer
// never comes is given up after a third of a TTL, and the put it may have
// landed removed, so Lock takes the lock on its next try instead of
// waiting on the call, or a TTL on its own item.
func TestCustomerLockRetriesAStalledTake(t *testing.T) {
	client, tables := newTables(t)
	const ttl = keepTTL
	tr := newStallingTransport("PutItem", true)
	tr.land = true
	tr.stalls.Store(1)
	defer close(tr.release)
	lock := dynamodb.NewCustomerLock(stallingClient(t, tr), dynamodb.Tables{Ledger: tables.Ledger})
	lock.TTL = ttl
	// A deadline of its own, so that a Lock without one fails the test
	// rather than hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 4*ttl)
	defer cancel()
	start := time.Now()
	held, unlock, err := lock.Lock(ctx, "did:mailto:example.com:a")
	if err != nil {
		t.Fatalf("Lock after a put that hung: %v", err)
	}
	defer unlock()
	if waited := time.Since(start); waited >= ttl {
		t.Fatalf("Lock took %v after a put that hung, want well under a TTL of %v", waited, ttl)
	}
	if d := tr.firstDeadline(); d <= 0 || d > ttl/3 {
		t.Fatalf("the put had %v until its deadline, want at most TTL/3 = %v", d, ttl/3)
	}
	other := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	other.TTL = ttl
	ctx, cancel = context.WithTimeout(context.Background(), ttl+time.Second)
	defer cancel()
	if _, _, err := other.Lock(ctx, "did:mailto:example.com:a"); err == nil || held.Err() != nil {
		t.Fatalf("after the retried put, another took the lock (%v) or the holder lost it (%v)", err, held.Err())
	}
}
