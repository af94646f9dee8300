package customers

import "time"

// SetCacheClock replaces the clock of c, for tests of expiry.
func SetCacheClock(c *Cached, now func() time.Time) { c.now = now }

// CacheLen is the number of spaces c remembers.
func CacheLen(c *Cached) int { return c.found.Len() }
