package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/backoff"
)

func TestDelay(t *testing.T) {
	p := backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	tests := []struct {
		name     string
		try      int
		asked    time.Duration
		min, max time.Duration
	}{
		{name: "first try waits about the base", try: 1, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
		{name: "second try doubles", try: 2, min: 100 * time.Millisecond, max: 200 * time.Millisecond},
		{name: "fifth try", try: 5, min: 800 * time.Millisecond, max: 1600 * time.Millisecond},
		{name: "capped at Max", try: 6, min: time.Second, max: 2 * time.Second},
		{name: "a shift past the width stays capped", try: 1000, min: time.Second, max: 2 * time.Second},
		{name: "try below 1 is the first", try: 0, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
		{name: "a longer wait asked for is honoured", try: 1, asked: 7 * time.Second, min: 7 * time.Second, max: 7 * time.Second},
		{name: "a shorter wait asked for does not shorten", try: 3, asked: time.Millisecond, min: 200 * time.Millisecond, max: 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 1000 {
				d := p.Delay(tt.try, tt.asked)
				if d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d, %v) = %v, want in [%v, %v]", tt.try, tt.asked, d, tt.min, tt.max)
				}
				seen[d] = true
			}
			if tt.min != tt.max && len(seen) < 2 {
				t.Fatalf("Delay(%d, %v) gave %d distinct waits in 1000 calls; want jitter", tt.try, tt.asked, len(seen))
			}
		})
	}
}

func TestDelayGrows(t *testing.T) {
	p := backoff.Policy{Base: 10 * time.Millisecond, Max: time.Hour}
	// Equal jitter keeps at least half the step, so the shortest wait of
	// try+2 is no shorter than the longest of try.
	for try := 1; try < 15; try++ { // below the cap
		longest := p.Base << (try - 1)
		if d := p.Delay(try+2, 0); d < longest {
			t.Fatalf("Delay(%d) = %v, shorter than the longest wait of try %d (%v)", try+2, d, try, longest)
		}
	}
}

func TestDelayZeroPolicy(t *testing.T) {
	if d := (backoff.Policy{}).Delay(3, 0); d != 0 {
		t.Fatalf("zero Policy waits %v, want 0", d)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := backoff.Policy{Base: time.Hour, Max: time.Hour}.Wait(ctx, 1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("Wait took %v after its context ended", time.Since(start))
	}
}

func TestWaitWaits(t *testing.T) {
	start := time.Now()
	if err := (backoff.Policy{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond}).Wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < 10*time.Millisecond {
		t.Fatalf("Wait returned after %v, want at least half the step (10ms)", got)
	}
}
