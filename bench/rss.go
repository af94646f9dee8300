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

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go and Node run on.
const clockTicks = 100

// ProcessCPU is the user+system CPU time pid has used so far, all its threads
// included (Linux /proc), so the CPU a server spends between two readings can
// be divided by the invocations it answered, whatever language it is in.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable CPU times in /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
