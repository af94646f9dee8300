package revocations

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultCacheSize bounds the delegations a Cached store remembers.
const DefaultCacheSize = 100_000

// Cached is a Store that remembers for a short time what it found about
// each delegation, revoked or not, for a server in front of a remote store
// (DynamoDB) that it would otherwise ask on every invocation: a gateway
// sends the same delegation with all of them. Past the size, the least
// recently used delegation is forgotten.
//
// A revocation recorded through a Cached store is applied by it at once:
// Revoke forgets the delegation, and a lookup that was under way when it
// did remembers nothing. A revocation recorded elsewhere (another replica,
// or another service sharing the table) is seen after at most the TTL.
type Cached struct {
	Store
	ttl time.Duration
	now func() time.Time

	// known is keyed by delegation CID. The expiry is kept with each entry,
	// not left to lru's expirable cache, so that tests can move the clock.
	known *lru.Cache[string, cachedLookup]

	// mu makes a Revoke and the storing of a lookup's answers happen one
	// after the other. revokes counts the Revoke calls, so that a lookup
	// begun before one does not remember what it found.
	mu      sync.Mutex
	revokes uint64
}

type cachedLookup struct {
	found   []Revocation
	expires time.Time
}

// NewCached wraps store; size <= 0 is DefaultCacheSize.
func NewCached(store Store, ttl time.Duration, size int) *Cached {
	if size <= 0 {
		size = DefaultCacheSize
	}
	known, _ := lru.New[string, cachedLookup](size) // fails only for size <= 0
	return &Cached{Store: store, ttl: ttl, now: time.Now, known: known}
}

// Revocations answers from memory for the delegations looked up less than
// the TTL ago, and asks the store, in one call, about the others.
func (c *Cached) Revocations(ctx context.Context, delegations []string) ([]Revocation, error) {
	now := c.now()
	var (
		found   []Revocation
		missing []string
	)
	c.mu.Lock()
	revokes := c.revokes
	c.mu.Unlock()
	for _, d := range delegations {
		if hit, ok := c.known.Get(d); ok && now.Before(hit.expires) {
			found = append(found, hit.found...)
		} else {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return found, nil
	}
	fresh, err := c.Store.Revocations(ctx, missing)
	if err != nil {
		return nil, err
	}
	byDelegation := make(map[string][]Revocation, len(missing))
	for _, r := range fresh {
		byDelegation[r.Delegation] = append(byDelegation[r.Delegation], r)
	}
	c.mu.Lock()
	if c.revokes == revokes {
		for _, d := range missing {
			c.known.Add(d, cachedLookup{found: byDelegation[d], expires: now.Add(c.ttl)})
		}
	}
	c.mu.Unlock()
	return append(found, fresh...), nil
}

// Revoke records r and forgets what was remembered about its delegation.
func (c *Cached) Revoke(ctx context.Context, r Revocation) error {
	err := c.Store.Revoke(ctx, r)
	c.mu.Lock()
	c.revokes++
	c.known.Remove(r.Delegation)
	c.mu.Unlock()
	return err
}
