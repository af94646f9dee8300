package dynamodb

import "time"

// SetClock replaces a lock's clock, for tests of machines whose clocks disagree.
func (l *CustomerLock) SetClock(now func() time.Time) { l.now = now }
