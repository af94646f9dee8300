package billing_test

import (
	"context"
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
func startWorker(t *testing.T, bin string, h *harness, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"worker",
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
	}, extra...)...)
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
	h.spread = 15 * time.Second // about four events a window: many batches
	h.fake.AddMeter("egress")   // the worker checks at start that its meter exists
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

	for _, killAt := range []int{10, 30} {
		w := startWorker(t, bin, h)
		waitFor(t, "meter events to reach Stripe", func() bool { return len(h.fake.Events()) >= killAt })
		if err := w.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		w.Wait()
		if depth, _ := h.queue.Depth(context.Background()); depth == 0 {
			t.Fatal("every event was settled before the kill: the kill proves nothing")
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

// TestKilledBetweenBatchWrittenAndStripeAnswer kills the worker with SIGKILL
// while Stripe holds its first batch's meter event but has not answered:
// the batch is in the ledger, pending. The next worker must send the same
// batch again, same identifier and value, so that Stripe counts it once.
func TestKilledBetweenBatchWrittenAndStripeAnswer(t *testing.T) {
	bin := buildEgressd(t)
	h := newHarness(t, time.Second)
	h.fake.AddMeter("egress")
	h.fake.SetSlowDelay(time.Minute)
	h.fake.SetFault(func(n int, _ stripetest.MeterEvent) stripetest.Fault {
		if n == 1 {
			return stripetest.SlowAfter // recorded; the answer never comes in time
		}
		return stripetest.None
	})
	c := h.customer(t, "alice", "stripe:cus_alice")
	h.enqueue(t, c, 50) // one window

	w := startWorker(t, bin, h, "--stripe-timeout", "1m")
	waitFor(t, "the batch to reach Stripe", func() bool { return len(h.fake.Events()) == 1 })
	if n := h.count(t, billing.Pending); n == 0 {
		t.Fatal("no entry pending while Stripe holds the call: the batch was not written first")
	}
	first := h.fake.Accepted()[0]
	if err := w.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w.Wait()

	w = startWorker(t, bin, h)
	waitFor(t, "the queue to drain and the ledger to settle", h.settled(t))
	w.Process.Signal(syscall.SIGTERM)
	w.Wait()
	h.checkExactlyOnce(t, map[string]string{c: "stripe:cus_alice"})
	if got := h.fake.Events()[first.Identifier]; got.Value != first.Value {
		t.Errorf("the first batch is now %+v, it was %+v when the worker died", got, first)
	}
	if resent := h.fake.Calls() - len(h.fake.Events()); resent < 1 {
		t.Errorf("%d calls for %d meter events: the first batch was not sent again after the restart", h.fake.Calls(), len(h.fake.Events()))
	}
}
