package customers

import (
	"context"
	"strings"
	"sync"
	"time"
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
// Account, Provision and SetAccount go straight to the store; Provision also
// forgets what this process remembered about the space.
type Cached struct {
	Store
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	found map[string]cachedCustomer // by space and providers
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
	return &Cached{Store: store, ttl: ttl, size: size, now: time.Now, found: make(map[string]cachedCustomer)}
}

// Customer answers from memory when it found the space's customer less than
// the TTL ago, else asks the store.
func (c *Cached) Customer(ctx context.Context, space string, providers []string) (string, error) {
	key := space + " " + strings.Join(providers, " ")
	now := c.now()
	c.mu.Lock()
	hit, ok := c.found[key]
	c.mu.Unlock()
	if ok && now.Before(hit.expires) {
		return hit.customer, nil
	}
	customer, err := c.Store.Customer(ctx, space, providers)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.found) >= c.size {
		c.evict(now)
	}
	c.found[key] = cachedCustomer{customer: customer, expires: now.Add(c.ttl)}
	return customer, nil
}

// evict makes room: expired entries go, and if none had expired, an
// arbitrary tenth of the rest (map order), which is cheap and good enough
// for a cache whose entries live seconds. Called with mu held.
func (c *Cached) evict(now time.Time) {
	for k, v := range c.found {
		if !now.Before(v.expires) {
			delete(c.found, k)
		}
	}
	for k := range c.found {
		if len(c.found) < c.size-c.size/10 {
			break
		}
		delete(c.found, k)
	}
}

// Provision records the consumer and forgets the space's cached customer.
func (c *Cached) Provision(ctx context.Context, space, customer, provider string) error {
	err := c.Store.Provision(ctx, space, customer, provider)
	c.mu.Lock()
	for k := range c.found {
		if strings.HasPrefix(k, space+" ") {
			delete(c.found, k)
		}
	}
	c.mu.Unlock()
	return err
}
