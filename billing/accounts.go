package billing

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrUnknownCustomer is what Accounts answers for a customer it does not know.
var ErrUnknownCustomer = errors.New("billing: unknown customer")

// Accounts finds a customer's account at the sink. Account returns "" when
// the customer has none, and an error matching ErrUnknownCustomer when the
// customer is unknown.
type Accounts interface {
	Account(ctx context.Context, customer string) (string, error)
}

// accountCache remembers answers from Accounts for a short TTL, so a busy
// customer costs one lookup every TTL instead of one per batch (the JS
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
// ErrUnknownCustomer are not cached.
func (c *accountCache) Account(ctx context.Context, customer string) (string, error) {
	now := c.now()
	c.mu.Lock()
	hit, ok := c.m[customer]
	c.mu.Unlock()
	if ok && now.Before(hit.expires) {
		if hit.notFound {
			return "", ErrUnknownCustomer
		}
		return hit.account, nil
	}

	account, err := c.src.Account(ctx, customer)
	notFound := errors.Is(err, ErrUnknownCustomer)
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
