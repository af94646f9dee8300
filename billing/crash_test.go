package billing_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// buildEgressd builds the egressd binary into a temporary directory.
func buildEgressd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "egressd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/egressd/egressd/cmd/egressd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startWorker runs `egressd worker` on the harness's data directory.
func startWorker(t *testing.T, bin string, h *harness) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "worker",
		"--data-dir", h.dir,
		"--stripe-key", stripetest.Key,
		"--stripe-url", h.fake.URL,
		"--stripe-rate", "1000",
		"--stripe-timeout", "500ms",
		"--queue-visibility", "2s",
		"--worker-wait", "50ms",
		"--worker-backoff", "5ms",
		"--worker-backoff-max", "50ms",
		"--worker-max-tries", "50",
		"--log-level", "error",
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// waitFor polls until cond holds, failing the test after a minute (a hang).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWorkerKilledMidRun kills `egressd worker` processes with SIGKILL while
// they report to a faulty Stripe, restarts them (two at once at the end),
// and checks every event is in Stripe exactly once and counted once.
func TestWorkerKilledMidRun(t *testing.T) {
	bin := buildEgressd(t)
	h := newHarness(t, 2*time.Second)
	h.fake.AddMeter("egress") // the worker checks at start that its meter exists
	h.fake.SetDelay(3 * time.Millisecond)
	h.fake.SetSlowDelay(time.Second)
	h.fake.SetFault(faultEvery)

	accounts := map[string]string{}
	var all []billing.Event
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		c := h.customer(t, name, "stripe:cus_"+name)
		accounts[c] = "stripe:cus_" + name
		all = append(all, h.enqueue(t, c, 60)...)
	}
	h.requeue(t, all[:30]...)
	total := len(h.expected)

	for _, killAt := range []int{40, 120} {
		w := startWorker(t, bin, h)
		waitFor(t, "meter events to reach Stripe", func() bool { return len(h.fake.Events()) >= killAt })
		if err := w.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		w.Wait()
		if n := len(h.fake.Events()); n >= total {
			t.Fatalf("all %d events were reported before the kill: the kill proves nothing", n)
		}
	}

	// Two workers at once on the same data directory finish the job.
	a, b := startWorker(t, bin, h), startWorker(t, bin, h)
	waitFor(t, "the queue to drain and the ledger to settle", h.settled(t))
	for _, w := range []*exec.Cmd{a, b} {
		w.Process.Signal(syscall.SIGTERM)
		if err := w.Wait(); err != nil {
			t.Errorf("worker exited with %v on SIGTERM", err)
		}
	}

	h.checkExactlyOnce(t, accounts)
	if n := h.count(t, billing.Reported); n != int64(total) {
		t.Errorf("%d entries reported, want %d", n, total)
	}
	t.Logf("%d events, %d Stripe calls across 2 kills and 2 concurrent workers", total, h.fake.Calls())
}
