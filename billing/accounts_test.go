package billing

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// countingAccounts answers from a map and counts the lookups.
type countingAccounts struct {
	accounts map[string]string
	fail     error
	lookups  int
}

func (a *countingAccounts) Account(_ context.Context, customer string) (string, error) {
	a.lookups++
	if a.fail != nil {
		return "", a.fail
	}
	account, ok := a.accounts[customer]
	if !ok {
		return "", fmt.Errorf("customer %s: %w", customer, ErrUnknownCustomer)
	}
	return account, nil
}

func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	src := &countingAccounts{accounts: map[string]string{"alice": "stripe:cus_a", "free": ""}}
	now := time.Unix(1000, 0)
	c := newAccountCache(src, time.Second, func() time.Time { return now })

	ask := func(customer, want string, wantErr error) {
		t.Helper()
		got, err := c.Account(ctx, customer)
		if got != want || !errors.Is(err, wantErr) {
			t.Fatalf("Account(%s) = %q, %v; want %q, %v", customer, got, err, want, wantErr)
		}
	}
	for range 3 {
		ask("alice", "stripe:cus_a", nil)
		ask("free", "", nil)
		ask("nobody", "", ErrUnknownCustomer)
	}
	if src.lookups != 3 {
		t.Fatalf("%d lookups for three customers asked three times; want 3 (accounts, none and unknown are remembered)", src.lookups)
	}

	// A `customer set` is seen once the TTL has passed, and not before.
	src.accounts["free"] = "stripe:cus_f"
	now = now.Add(999 * time.Millisecond)
	ask("free", "", nil)
	now = now.Add(time.Millisecond)
	ask("free", "stripe:cus_f", nil)

	// Failures of the source are not remembered.
	src.fail = errors.New("stripe down")
	now = now.Add(time.Second)
	before := src.lookups
	for range 2 {
		if _, err := c.Account(ctx, "alice"); !errors.Is(err, src.fail) {
			t.Fatalf("Account during an outage = %v, want %v", err, src.fail)
		}
	}
	if src.lookups-before != 2 {
		t.Fatalf("%d lookups for two calls during an outage; want 2", src.lookups-before)
	}
	src.fail = nil
	ask("alice", "stripe:cus_a", nil)
}

func TestAccountCacheStaysBounded(t *testing.T) {
	src := &countingAccounts{accounts: map[string]string{}}
	c := newAccountCache(src, time.Hour, time.Now)
	for i := range maxCachedAccounts + 10 {
		c.Account(context.Background(), fmt.Sprint("customer-", i))
	}
	if n := c.m.Len(); n > maxCachedAccounts {
		t.Fatalf("cache holds %d customers, bound %d", n, maxCachedAccounts)
	}
}
