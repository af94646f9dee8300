package dynamodb_test

import (
	"context"
	"strconv"
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
	ledgerTables := dynamodb.Tables{Events: tables.Events, Monthly: tables.Monthly, Ledger: tables.Ledger}
	var (
		holding, most atomic.Int32
		turns         atomic.Int32
		wg            sync.WaitGroup
	)
	for range 4 {
		lock := dynamodb.NewCustomerLock(client, ledgerTables)
		wg.Go(func() {
			for range 5 {
				unlock, err := lock.Lock(context.Background(), "did:mailto:example.com:hot")
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

// TestCustomerLockOfADeadHolderExpires: a holder that died (its lock item
// left behind, expired) does not keep the customer waiting.
func TestCustomerLockOfADeadHolderExpires(t *testing.T) {
	client, tables := newTables(t)
	lock := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger})
	putItem(t, client, tables.Ledger, map[string]types.AttributeValue{
		"pk": s("lock#did:mailto:example.com:a"), "sk": s("lock"), "owner": s("dead"),
		"expires": n(strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := lock.Lock(ctx, "did:mailto:example.com:a")
	if err != nil {
		t.Fatalf("the expired lock was not taken over: %v", err)
	}
	unlock()
	// A live holder's lock is not taken: the next Lock waits for it.
	unlock, _ = lock.Lock(context.Background(), "did:mailto:example.com:a")
	defer unlock()
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := dynamodb.NewCustomerLock(client, dynamodb.Tables{Ledger: tables.Ledger}).Lock(short, "did:mailto:example.com:a"); err == nil {
		t.Fatal("a second holder took a live lock")
	}
}
