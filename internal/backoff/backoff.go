// Package backoff is the one wait between tries of a call that failed for a
// reason that passes (throttling, a conflict, an outage): exponential from a
// base, capped, with jitter so that callers hit by the same failure do not
// try again in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy shapes the waits: Base before the second try, doubling with each
// try after that, never more than Max.
type Policy struct {
	Base, Max time.Duration
}

// Delay is the wait before try+1, where try counts from 1. It is the step
// (Base doubled try-1 times, capped at Max) less a random part of its half:
// "equal jitter", at least half the step, so waits still grow while callers
// spread out. A longer wait asked for by the other side (Retry-After) is
// honoured as it is.
func (p Policy) Delay(try int, asked time.Duration) time.Duration {
	// The shift is bounded so the step cannot wrap past zero; one that
	// overflows anyway is capped below.
	d := p.Base << min(max(try-1, 0), 30)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, asked)
}

// Wait sleeps Delay(try, 0), or until ctx ends, whose error it returns.
func (p Policy) Wait(ctx context.Context, try int) error {
	t := time.NewTimer(p.Delay(try, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
