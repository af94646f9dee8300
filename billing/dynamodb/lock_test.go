package dynamodb_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing/dynamodb"
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
	lock.TTL = 300 * time.Millisecond
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
	holder.TTL = 300 * time.Millisecond
	_, unlock, err := holder.Lock(context.Background(), "did:mailto:example.com:a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ahead := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	ahead.TTL = 300 * time.Millisecond
	ahead.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
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
	lock.TTL = 300 * time.Millisecond
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
	case <-time.After(2 * time.Second):
		t.Fatal("the holder kept working after losing its lock")
	}
}
