package revocations

import "time"

// SetNow replaces the clock of a Cached store, for tests.
func SetNow(c *Cached, now func() time.Time) { c.now = now }
