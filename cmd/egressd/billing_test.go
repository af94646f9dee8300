package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/testenv"
)

// usageJSON is the part of `egressd usage --json` the tests read.
type usageJSON struct {
	Usage []struct {
		Customer string `json:"customer"`
		Bytes    int64  `json:"bytes"`
		Events   int64  `json:"events"`
	} `json:"usage"`
	Bytes  int64            `json:"bytes"`
	Events int64            `json:"events"`
	Ledger map[string]int64 `json:"ledger"`
	Queue  struct {
		Depth int `json:"depth"`
	} `json:"queue"`
}

func usage(t *testing.T, data string) usageJSON {
	t.Helper()
	return decodeUsage(t, run(t, "usage", "--data-dir", data, "--json"))
}

func decodeUsage(t *testing.T, out string) usageJSON {
	t.Helper()
	var u usageJSON
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("usage --json printed %q: %v", out, err)
	}
	return u
}

// waitSettled polls `egressd usage` until the queue is empty and nothing is
// pending, failing after a minute (a hang, not a timing assertion).
func waitSettled(t *testing.T, data string) usageJSON {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		u := usage(t, data)
		if u.Queue.Depth == 0 && u.Ledger["pending"] == 0 && u.Events > 0 {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("billing did not settle: %+v", u)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordEgress provisions a space for customer and records bytes from it.
func recordEgress(t *testing.T, data, url, customer, bytes string) {
	t.Helper()
	spaceDID, spaceKey := generateKey(t)
	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", customer)
	out := run(t, "record", "--url", url, "--key", spaceKey,
		"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", bytes)
	if v := decodeView(t, out); v.Error != nil {
		t.Fatalf("record failed: %s", v.Error)
	}
}

// TestBillingWithStripeMock is the billing tour: serve reports to
// stripe-mock, a customer without an account is kept unbillable, and
// `customer set` plus `billing redrive` bill it.
func TestBillingWithStripeMock(t *testing.T) {
	stripeURL := testenv.URL(t, testenv.Stripe)
	testenv.Reachable(t, stripeURL)
	// stripe-mock's only meter is its fixture's: egressd checks at start
	// that the meter it bills to exists.
	stripeFlags := []string{"--stripe-key", "sk_test_egressd", "--stripe-url", stripeURL, "--stripe-meter-event", "test-meter-event-name"}
	data := t.TempDir()
	srv := startServe(t, data, append([]string{"--worker-wait", "50ms"}, stripeFlags...)...)

	const alice, bob = "did:mailto:example.com:alice", "did:mailto:example.com:bob"
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	recordEgress(t, data, srv.URL, alice, "1048576")
	recordEgress(t, data, srv.URL, bob, "2048")

	u := waitSettled(t, data)
	if u.Ledger["reported"] != 1 || u.Ledger["unbillable"] != 1 || u.Bytes != 1048576+2048 || u.Events != 2 {
		t.Fatalf("after serve billed: %+v; want alice reported, bob unbillable, both counted", u)
	}
	table := run(t, "usage", "--data-dir", data)
	if !strings.Contains(table, bob) || !strings.Contains(table, "unbillable 1") {
		t.Fatalf("usage table does not show bob's unbillable event:\n%s", table)
	}
	list := run(t, "billing", "list", "--data-dir", data)
	if !strings.Contains(list, bob) || !strings.Contains(list, billing.ReasonNoAccount) || strings.Contains(list, alice) {
		t.Fatalf("billing list should show bob's event and why, and not alice's:\n%s", list)
	}

	run(t, "customer", "set", "--data-dir", data, "--customer", bob, "--stripe-customer", "cus_bob")
	out := run(t, append([]string{"billing", "redrive", "--data-dir", data}, stripeFlags...)...)
	if !strings.Contains(out, "reported 1") {
		t.Fatalf("billing redrive printed %q, want 1 reported", out)
	}
	if u = usage(t, data); u.Ledger["reported"] != 2 || u.Ledger["unbillable"] != 0 || u.Events != 2 {
		t.Fatalf("after redrive: %+v; want both reported, still counted once", u)
	}
	srv.stop(t)
}

// TestWorkerSidecar: with serve --worker=false the events wait on the queue
// until an `egressd worker` process bills them; it stops cleanly on SIGTERM.
func TestWorkerSidecar(t *testing.T) {
	stripeURL := testenv.URL(t, testenv.Stripe)
	testenv.Reachable(t, stripeURL)
	data := t.TempDir()
	srv := startServe(t, data, "--worker=false")
	const alice = "did:mailto:example.com:alice"
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	recordEgress(t, data, srv.URL, alice, "4096")
	if u := usage(t, data); u.Queue.Depth != 1 || u.Events != 0 {
		t.Fatalf("without a worker: %+v; want the event queued and not yet ledgered", u)
	}

	worker := exec.Command(egressdBinary(t), "worker", "--data-dir", data, "--worker-wait", "50ms",
		"--stripe-url", stripeURL, "--stripe-meter-event", "test-meter-event-name", "--log-level", "warn")
	// The key from the environment, as an operator would set it.
	worker.Env = isolatedEnv("STRIPE_SECRET_KEY=sk_test_egressd")
	worker.Stderr = os.Stderr
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if worker.ProcessState == nil {
			worker.Process.Kill()
			worker.Wait()
		}
	})
	if u := waitSettled(t, data); u.Ledger["reported"] != 1 || u.Bytes != 4096 {
		t.Fatalf("after the sidecar: %+v; want the event reported", u)
	}
	worker.Process.Signal(syscall.SIGTERM)
	if err := worker.Wait(); err != nil {
		t.Fatalf("egressd worker exited with %v on SIGTERM", err)
	}
	srv.stop(t)
}
