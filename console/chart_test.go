package console

import (
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 1234: "1.2 kB", 999_499: "999 kB", 999_949: "1.0 MB", 999_950: "1.0 MB",
		12_000_000: "12 MB", 1_234_567_890: "1.2 GB", 5_000_000_000_000: "5.0 TB", 1<<64 - 1: "18 EB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestExact(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := exact(n); got != want {
			t.Errorf("exact(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "none", 42 * time.Second: "42s", 12*time.Minute + 20*time.Second: "12m",
		3*time.Hour + 12*time.Minute: "3h12m", 47 * time.Hour: "47h00m", 50 * time.Hour: "2d2h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestChartAxis(t *testing.T) {
	for _, tc := range []struct {
		peak  uint64
		ticks []string
	}{
		{0, []string{"0 B", "1 B"}},
		{2_900_000_000, []string{"0 B", "1.0 GB", "2.0 GB", "3.0 GB"}},
		{60_000_000, []string{"0 B", "20 MB", "40 MB", "60 MB"}},
		{1_234, []string{"0 B", "500 B", "1.0 kB", "1.5 kB"}},
	} {
		c := chart([]DayTotal{{Date: "2026-03-01", Bytes: tc.peak / 2}, {Date: "2026-03-02", Bytes: tc.peak}})
		var got []string
		for _, tk := range c.Ticks {
			got = append(got, tk.Label)
		}
		if len(got) != len(tc.ticks) {
			t.Errorf("peak %d: ticks %v, want %v", tc.peak, got, tc.ticks)
			continue
		}
		for i := range got {
			if got[i] != tc.ticks[i] {
				t.Errorf("peak %d: ticks %v, want %v", tc.peak, got, tc.ticks)
				break
			}
		}
		if tc.peak > 0 && c.Bars[1].Y < c.Top {
			t.Errorf("peak %d: the tallest bar leaves the plot", tc.peak)
		}
	}
}
