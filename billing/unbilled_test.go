package billing_test

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// syncBuffer is a log destination the worker's goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// TestUnbilledEventsAreSummedUpInTheLog: 600 events of two customers
// without a billing account, each event in its own window (its own batch),
// used to write 600 WARN lines. Each customer now gets one line at once and
// one line with the rest of the interval's count, and the counts add up.
func TestUnbilledEventsAreSummedUpInTheLog(t *testing.T) {
	for _, every := range []time.Duration{time.Hour, 50 * time.Millisecond} {
		t.Run(every.String(), func(t *testing.T) {
			h := newHarness(t, 3*time.Second)
			h.spread = time.Minute
			bob := h.customer(t, "bob", "")
			carol := h.customer(t, "carol", "")
			h.enqueue(t, bob, 300)
			h.enqueue(t, carol, 300)
			var logs syncBuffer
			cfg := h.config(nil)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			cfg.UnbilledLogEvery = every
			start := time.Now()
			runUntil(t, newWorker(t, cfg), h.settled(t))
			elapsed := time.Since(start)
			if n := h.count(t, billing.Unbillable); n != 600 {
				t.Fatalf("%d unbillable entries, want 600", n)
			}

			lines, events := map[string]int{}, map[string]int{}
			for _, line := range logs.lines() {
				if !strings.Contains(line, `msg="events not billed"`) {
					t.Errorf("unexpected WARN line: %s", line)
					continue
				}
				customer := field(line, "customer")
				lines[customer]++
				n, err := strconv.Atoi(field(line, "events"))
				if err != nil || !strings.Contains(line, "reason=\""+billing.ReasonNoAccount+"\"") {
					t.Errorf("line lacks its count or reason: %s", line)
				}
				events[customer] += n
			}
			// At most the first line, one per interval passed, and the
			// last at shutdown.
			most := 2 + int(elapsed/every)
			for _, c := range []string{bob, carol} {
				if events[c] != 300 {
					t.Errorf("%s: the lines count %d events, want 300", c, events[c])
				}
				if lines[c] < 2 || lines[c] > most {
					t.Errorf("%s: %d lines, want 2 to %d for %v with a line every %v", c, lines[c], most, elapsed, every)
				}
			}
		})
	}
}

// field is the value of key in a slog text line.
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		v, _, _ = strings.Cut(v[1:], `"`)
		return v
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}
