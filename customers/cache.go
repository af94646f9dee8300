package customers

import (
	"context"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCacheSize bounds the spaces a Cached store remembers.
const DefaultCacheSize = 100_000

// Cached is a Store that remembers found customers for a short time, for a
// server in front of a remote store (DynamoDB) that it would otherwise ask on
// every invocation.
//
// Only hits are remembered: a space nobody pays for is asked about again
// every time, so a space provisioned a moment ago is found by the next
// request. A space moved to another customer is seen after at most the TTL.
// Past the size, the least recently used space is forgotten. Account,
// Provision and SetAccount go straight to the store; Provision also forgets
// what this process remembered about the space.
type Cached struct {
	Store
	ttl time.Duration
	now func() time.Time

	// found is keyed by space and providers. The expiry is kept with each
	// entry, not left to lru's expirable cache, so that tests can move the
	// clock.
	found *lru.Cache[string, cachedCustomer]
}

type cachedCustomer struct {
	customer string
	expires  time.Time
}

// NewCached wraps store; size <= 0 is DefaultCacheSize.
func NewCached(store Store, ttl time.Duration, size int) *Cached {
	if size <= 0 {
		size = DefaultCacheSize
	}
	found, _ := lru.New[string, cachedCustomer](size) // fails only for size <= 0
	return &Cached{Store: store, ttl: ttl, now: time.Now, found: found}
}

// Customer answers from memory when it found the space's customer less than
// the TTL ago, else asks the store.
func (c *Cached) Customer(ctx context.Context, space string, providers []string) (string, error) {
	key := space + " " + strings.Join(providers, " ")
	now := c.now()
	if hit, ok := c.found.Get(key); ok && now.Before(hit.expires) {
		return hit.customer, nil
	}
	customer, err := c.Store.Customer(ctx, space, providers)
	if err != nil {
		return "", err
	}
	c.found.Add(key, cachedCustomer{customer: customer, expires: now.Add(c.ttl)})
	return customer, nil
}

// Provision records the consumer and forgets the space's cached customer.
func (c *Cached) Provision(ctx context.Context, space, customer, provider string) error {
	err := c.Store.Provision(ctx, space, customer, provider)
	for _, k := range c.found.Keys() {
		if strings.HasPrefix(k, space+" ") {
			c.found.Remove(k)
		}
	}
	return err
}
