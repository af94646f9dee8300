package revocations

import (
	"context"
	"sync"
	"time"
)

// DefaultCacheSize bounds the delegations a Cached store remembers.
const DefaultCacheSize = 100_000

// Cached is a Store that remembers for a short time what it found about
// each delegation, revoked or not, for a server in front of a remote store
// (DynamoDB) that it would otherwise ask on every invocation: a gateway
// sends the same delegation with all of them.
//
// A revocation recorded through a Cached store is applied by it at once:
// Revoke forgets the delegation, and a lookup that was under way when it
// did remembers nothing. A revocation recorded elsewhere (another replica,
// or another service sharing the table) is seen after at most the TTL.
type Cached struct {
	Store
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	known map[string]cachedLookup // by delegation CID
	// revokes counts the Revoke calls, so that a lookup begun before one
	// does not remember what it found.
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
	return &Cached{Store: store, ttl: ttl, size: size, now: time.Now, known: make(map[string]cachedLookup)}
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
	for _, d := range delegations {
		if hit, ok := c.known[d]; ok && now.Before(hit.expires) {
			found = append(found, hit.found...)
		} else {
			missing = append(missing, d)
		}
	}
	revokes := c.revokes
	c.mu.Unlock()
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
		if len(c.known)+len(missing) > c.size {
			c.evict(now)
		}
		for _, d := range missing {
			c.known[d] = cachedLookup{found: byDelegation[d], expires: now.Add(c.ttl)}
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
	delete(c.known, r.Delegation)
	c.mu.Unlock()
	return err
}

// evict makes room: expired entries go, and if that is not enough, an
// arbitrary tenth of the rest (map order), which is cheap and good enough
// for a cache whose entries live seconds. Called with mu held.
func (c *Cached) evict(now time.Time) {
	for k, v := range c.known {
		if !now.Before(v.expires) {
			delete(c.known, k)
		}
	}
	for k := range c.known {
		if len(c.known) < c.size-c.size/10 {
			break
		}
		delete(c.known, k)
	}
}
