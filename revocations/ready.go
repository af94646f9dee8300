package revocations

import "context"

// Ready passes readiness (/readyz) through to the cached store, when it can
// tell: the cache must not hide a store that is down.
func (c *Cached) Ready(ctx context.Context) error {
	if p, ok := c.Store.(interface{ Ready(context.Context) error }); ok {
		return p.Ready(ctx)
	}
	return nil
}
