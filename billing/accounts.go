package billing

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
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
// `customer set` is still seen within the TTL. Both an account (or none) and
// ErrUnknownCustomer are remembered.
type accountCache struct {
	src Accounts
	ttl time.Duration
	now func() time.Time

	// m is keyed by customer. The expiry is kept with each entry, not left
	// to lru's expirable cache, so that the worker's clock (Config.Now) rules.
	m *lru.Cache[string, cachedAccount]
}

type cachedAccount struct {
	account  string
	notFound bool
	expires  time.Time
}

// maxCachedAccounts bounds the cache; past it, the least recently used
// customer is forgotten.
const maxCachedAccounts = 100_000

func newAccountCache(src Accounts, ttl time.Duration, now func() time.Time) *accountCache {
	m, _ := lru.New[string, cachedAccount](maxCachedAccounts) // fails only for size <= 0
	return &accountCache{src: src, ttl: ttl, now: now, m: m}
}

// Account returns the cached answer, or asks the source. Errors other than
// ErrUnknownCustomer are not cached.
func (c *accountCache) Account(ctx context.Context, customer string) (string, error) {
	now := c.now()
	if hit, ok := c.m.Get(customer); ok && now.Before(hit.expires) {
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
	c.m.Add(customer, cachedAccount{account: account, notFound: notFound, expires: now.Add(c.ttl)})
	return account, err
}

// Forget drops what the cache holds for customer, so the next Account asks
// the source: a redrive acts on a cause just fixed (an account just set).
func (c *accountCache) Forget(customer string) { c.m.Remove(customer) }
