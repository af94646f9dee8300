package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSS samples the resident memory of a process (Linux /proc) every interval
// until ctx ends, so a load run can show whether the server's memory stays flat.
type RSS struct {
	Samples []int64 // bytes
}

// SampleRSS starts sampling pid; read the result after ctx ends and done closes.
func SampleRSS(ctx context.Context, pid int, interval time.Duration) (*RSS, <-chan struct{}) {
	r := &RSS{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, err := readRSS(pid); err == nil {
				r.Samples = append(r.Samples, v)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return r, done
}

func (r *RSS) String() string {
	if len(r.Samples) == 0 {
		return "no RSS samples"
	}
	lo, hi := r.Samples[0], r.Samples[0]
	for _, v := range r.Samples {
		lo, hi = min(lo, v), max(hi, v)
	}
	// The samples at each fifth of the run show whether memory levels off.
	var course []string
	for i := 0; i <= 4; i++ {
		course = append(course, fmt.Sprintf("%.0f", mb(r.Samples[i*(len(r.Samples)-1)/4])))
	}
	return fmt.Sprintf("server RSS over %d samples: min %.0f MB, max %.0f MB; at 0, 25, 50, 75, 100%% of the run: %s MB",
		len(r.Samples), mb(lo), mb(hi), strings.Join(course, ", "))
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
