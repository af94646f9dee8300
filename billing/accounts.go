package billing

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/egressd/egressd/customers"
)

// Accounts finds a customer's payment account; customers.Store is one.
// Account returns "" when the customer has none and customers.ErrNotFound
// when the customer is unknown.
type Accounts interface {
	Account(ctx context.Context, customer string) (string, error)
}

// accountCache remembers answers from Accounts for a short TTL, so a busy
// customer costs one lookup every TTL instead of one per event (the JS
// original retrieved the Stripe customer before every meter event), while a
// `customer set` is still seen within the TTL.
type accountCache struct {
	src Accounts
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]cachedAccount
}

type cachedAccount struct {
	account  string
	notFound bool
	expires  time.Time
}

// maxCachedAccounts bounds the cache; past it, expired answers are dropped.
const maxCachedAccounts = 100_000

func newAccountCache(src Accounts, ttl time.Duration, now func() time.Time) *accountCache {
	return &accountCache{src: src, ttl: ttl, now: now, m: make(map[string]cachedAccount)}
}

// Account returns the cached answer, or asks the source. Errors other than
// customers.ErrNotFound are not cached.
func (c *accountCache) Account(ctx context.Context, customer string) (string, error) {
	now := c.now()
	c.mu.Lock()
	hit, ok := c.m[customer]
	c.mu.Unlock()
	if ok && now.Before(hit.expires) {
		if hit.notFound {
			return "", customers.ErrNotFound
		}
		return hit.account, nil
	}

	account, err := c.src.Account(ctx, customer)
	notFound := errors.Is(err, customers.ErrNotFound)
	if err != nil && !notFound {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedAccounts {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
	}
	c.m[customer] = cachedAccount{account: account, notFound: notFound, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return account, err
}
