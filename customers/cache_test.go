package customers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/customers/customerstest"
	"github.com/egressd/egressd/embedded"
)

// TestCachedConformance: in one process, the cache is invisible.
func TestCachedConformance(t *testing.T) {
	customerstest.Run(t, func(t *testing.T) customers.Store {
		db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s := db.Customers
		return customers.NewCached(s, time.Minute, 0)
	})
}

// countingStore answers from a map and counts the lookups that reach it.
type countingStore struct {
	customers.Store
	customers map[string]string
	lookups   int
}

func (s *countingStore) Customer(_ context.Context, space string, _ []string) (string, error) {
	s.lookups++
	if c, ok := s.customers[space]; ok {
		return c, nil
	}
	return "", customers.ErrNotFound
}

func TestCachedRemembersHitsOnly(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{customers: map[string]string{"did:key:a": "did:mailto:x"}}
	c := customers.NewCached(store, time.Second, 0)
	now := time.Unix(1000, 0)
	customers.SetCacheClock(c, func() time.Time { return now })
	providers := []string{"did:web:svc"}

	for range 3 {
		if got, err := c.Customer(ctx, "did:key:a", providers); err != nil || got != "did:mailto:x" {
			t.Fatalf("Customer(a) = %q, %v", got, err)
		}
	}
	if store.lookups != 1 {
		t.Fatalf("three lookups of a found space reached the store %d times, want 1", store.lookups)
	}

	// A miss is asked again, so provisioning elsewhere is seen at once.
	for range 2 {
		if _, err := c.Customer(ctx, "did:key:b", providers); !errors.Is(err, customers.ErrNotFound) {
			t.Fatalf("Customer(b) = %v, want ErrNotFound", err)
		}
	}
	store.customers["did:key:b"] = "did:mailto:y"
	if got, err := c.Customer(ctx, "did:key:b", providers); err != nil || got != "did:mailto:y" {
		t.Fatalf("Customer(b) once provisioned = %q, %v", got, err)
	}
	if store.lookups != 4 {
		t.Fatalf("store lookups = %d, want 4 (1 for a, 3 for b)", store.lookups)
	}

	// Another process moves a to another customer: seen once the TTL runs out.
	store.customers["did:key:a"] = "did:mailto:z"
	now = now.Add(999 * time.Millisecond)
	if got, _ := c.Customer(ctx, "did:key:a", providers); got != "did:mailto:x" {
		t.Fatalf("Customer(a) within the TTL = %q, want the cached did:mailto:x", got)
	}
	now = now.Add(time.Millisecond)
	if got, _ := c.Customer(ctx, "did:key:a", providers); got != "did:mailto:z" {
		t.Fatalf("Customer(a) after the TTL = %q, want did:mailto:z", got)
	}
}

func TestCachedStaysBounded(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{customers: map[string]string{}}
	for i := range 1000 {
		store.customers[fmt.Sprint("did:key:", i)] = "did:mailto:x"
	}
	c := customers.NewCached(store, time.Hour, 100)
	for i := range 1000 {
		if _, err := c.Customer(ctx, fmt.Sprint("did:key:", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := customers.CacheLen(c); n > 100 {
		t.Fatalf("cache holds %d spaces, bound 100", n)
	}
}
