package stripe

import "time"

// SetClock replaces the local clock by which r times its session renewals,
// so a test can let a session come due without waiting for it.
func SetClock(r *Reporter, now func() time.Time) { r.now = now }
