package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/embedded"
)

// reconcileRun runs `egressd billing reconcile` with args and returns its
// stdout, stderr and exit status: 1 is an answer here, not a failure.
func reconcileRun(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), append([]string{"billing", "reconcile"}, args...)...)
	cmd.Env = isolatedEnv()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), status
}

// reconcileJSON runs reconcile with --json, checks its exit status and
// decodes the report.
func reconcileJSON(t *testing.T, wantStatus int, args ...string) stripe.ReconcileReport {
	t.Helper()
	out, errOut, status := reconcileRun(t, append(args, "--json")...)
	if status != wantStatus {
		t.Fatalf("egressd billing reconcile %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), status, wantStatus, out, errOut)
	}
	var rep stripe.ReconcileReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("reconcile --json printed %q: %v", out, err)
	}
	return rep
}

// hourOf finds a customer's only hour in a report.
func hourOf(t *testing.T, rep stripe.ReconcileReport, customer string) stripe.ReconcileHour {
	t.Helper()
	var found []stripe.ReconcileHour
	for _, h := range rep.Hours {
		if h.Customer == customer {
			found = append(found, h)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s has %d hours in the report, want 1: %+v", customer, len(found), rep.Hours)
	}
	return found[0]
}

// TestBillingReconcile is the reconciliation tour. serve bills alice,
// keeps bob (no account) unbillable, and marks carol's batch failed though
// Stripe counted it (the connection dropped after Stripe took the event).
// reconcile finds alice clean and carol over-reported; --fix cannot cancel
// carol's event once Stripe has held it 24 hours, and does before. Against
// a Stripe that lost everything, reconcile finds alice under-reported,
// --fix corrects it, a second --fix before Stripe's summary catches up
// sends nothing new, and then the two match.
func TestBillingReconcile(t *testing.T) {
	billed := stripetest.New(t)
	billed.AddMeter("egress")
	billed.SetFault(func(n int, ev stripetest.MeterEvent) stripetest.Fault {
		if ev.Customer == "cus_carol" {
			return stripetest.DropAfter
		}
		return stripetest.None
	})
	data := t.TempDir()
	srv := startServe(t, data, "--worker-wait", "50ms", "--stripe-rate", "1000", "--worker-max-tries", "1",
		"--stripe-key", stripetest.Key, "--stripe-url", billed.URL)
	const alice, bob, carol = "did:mailto:example.com:alice", "did:mailto:example.com:bob", "did:mailto:example.com:carol"
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	run(t, "customer", "set", "--data-dir", data, "--customer", carol, "--stripe-customer", "cus_carol")
	recordEgress(t, data, srv.URL, alice, "1000")
	recordEgress(t, data, srv.URL, bob, "2000")
	recordEgress(t, data, srv.URL, carol, "4000")
	if u := waitSettled(t, data); u.Ledger["reported"] != 1 || u.Ledger["unbillable"] != 1 || u.Ledger["failed"] != 1 {
		t.Fatalf("after serve billed: %+v; want alice reported, bob unbillable, carol failed", u)
	}
	srv.stop(t)
	if got := billed.Totals(); got["cus_alice"] != 1000 || got["cus_carol"] != 4000 {
		t.Fatalf("Stripe bills %v; want alice's 1000 and carol's 4000", got)
	}

	now := time.Now().UTC()
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	args := func(url string, extra ...string) []string {
		return append([]string{"--data-dir", data, "--stripe-key", stripetest.Key, "--stripe-url", url,
			"--from", from, "--to", to, "--settle", "0s"}, extra...)
	}

	// alice alone is clean.
	rep := reconcileJSON(t, 0, args(billed.URL, "--customer", alice)...)
	if h := hourOf(t, rep, alice); h.Status != stripe.Match || h.Ledger != 1000 || h.Stripe != 1000 || len(rep.Actions) != 0 {
		t.Fatalf("alice: %+v, actions %+v; want 1000 on both sides", h, rep.Actions)
	}

	// Everyone: carol's failed batch is billed by Stripe; bob is skipped.
	rep = reconcileJSON(t, 1, args(billed.URL)...)
	if h := hourOf(t, rep, carol); h.Status != stripe.Drift || h.Ledger != 0 || h.Stripe != 4000 || h.Drift != 4000 {
		t.Fatalf("carol: %+v; want an over-report of 4000", h)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Customer != bob || rep.Skipped[0].Reason != "no Stripe account" {
		t.Fatalf("skipped = %+v, want bob", rep.Skipped)
	}

	// 25 hours later by Stripe's clock, it refuses the cancel: named, exit 1.
	var offset atomic.Int64
	billed.SetNow(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	offset.Store(int64(25 * time.Hour))
	rep = reconcileJSON(t, 1, args(billed.URL, "--fix")...)
	if h := hourOf(t, rep, carol); h.Status != stripe.Unmended || h.Unmended != 4000 {
		t.Fatalf("carol past 24 h: %+v; want 4000 unmended", h)
	}
	if len(rep.Actions) != 1 || rep.Actions[0].Kind != "cancel" || rep.Actions[0].Done || !strings.HasPrefix(rep.Actions[0].Result, "not cancelled") {
		t.Fatalf("actions past 24 h: %+v; want one refused cancel", rep.Actions)
	}
	if out, _, status := reconcileRun(t, args(billed.URL, "--fix")...); status != 1 || !strings.Contains(out, "not mended:") ||
		!strings.Contains(out, carol) || !strings.Contains(out, "+4000 bytes (unmended)") {
		t.Fatalf("table past 24 h (exit %d) does not name carol's 4000 bytes:\n%s", status, out)
	}

	// Within 24 hours the cancel goes through, and carol's hour is gone.
	offset.Store(0)
	rep = reconcileJSON(t, 0, args(billed.URL, "--fix")...)
	if h := hourOf(t, rep, carol); h.Status != stripe.Mended || len(rep.Actions) != 1 || rep.Actions[0].Result != "cancelled" {
		t.Fatalf("carol within 24 h: %+v, actions %+v; want the cancel", h, rep.Actions)
	}
	if got := billed.Totals(); got["cus_alice"] != 1000 || got["cus_carol"] != 0 {
		t.Fatalf("Stripe bills %v after the cancel; want alice's 1000 only", got)
	}
	if rep = reconcileJSON(t, 0, args(billed.URL)...); len(rep.Hours) != 1 || rep.Hours[0].Customer != alice {
		t.Fatalf("after the cancel: %+v; want alice's hour alone, matching", rep.Hours)
	}

	// A Stripe that lost alice's event, and whose summaries lag a minute.
	lost := stripetest.New(t)
	lost.AddMeter("egress")
	var lostOffset atomic.Int64
	lost.SetNow(func() time.Time { return time.Now().Add(time.Duration(lostOffset.Load())) })
	lost.SetSummaryLag(time.Minute)
	out, errOut, status := reconcileRun(t, args(lost.URL)...)
	if status != 1 || !strings.Contains(out, alice) || !strings.Contains(out, "-1000") || !strings.Contains(errOut, "1 drift") {
		t.Fatalf("lost at Stripe (exit %d):\n%s\n%s", status, out, errOut)
	}
	rep = reconcileJSON(t, 0, args(lost.URL, "--fix")...)
	if h := hourOf(t, rep, alice); h.Status != stripe.Mended || len(rep.Actions) != 1 || rep.Actions[0].Result != "sent" || rep.Actions[0].Value != 1000 {
		t.Fatalf("--fix: %+v, actions %+v; want a correction of 1000 sent", h, rep.Actions)
	}
	correction := rep.Actions[0].Identifier
	rep = reconcileJSON(t, 0, args(lost.URL, "--fix")...)
	if len(rep.Actions) != 1 || rep.Actions[0].Identifier != correction || !strings.HasPrefix(rep.Actions[0].Result, "already at Stripe") {
		t.Fatalf("second --fix before Stripe's summary caught up: %+v; want %s already at Stripe", rep.Actions, correction)
	}
	if ev := lost.Accepted(); len(ev) != 1 || ev[0].Identifier != correction || ev[0].Customer != "cus_alice" || ev[0].Value != 1000 {
		t.Fatalf("Stripe accepted %+v; want the one correction", ev)
	}
	lostOffset.Store(int64(2 * time.Minute))
	rep = reconcileJSON(t, 0, args(lost.URL)...)
	if h := hourOf(t, rep, alice); h.Status != stripe.Match || h.Stripe != 1000 {
		t.Fatalf("once Stripe's summary caught up: %+v; want a match", h)
	}
}

// TestBillingReconcileAccountChange: serve bills alice to cus_alice, then
// her account moves to cus_alice2. reconcile --fix compares what went to
// cus_alice with cus_alice, and sends cus_alice2 nothing (it used to take
// the hour for an under-report of cus_alice2 and bill it again there).
// Once her account is removed, that hour is still compared; a batch from
// before the ledger kept accounts (written straight into the ledger, as an
// older egressd left it) can be compared with no account: the run names
// it with its bytes and exits 1.
func TestBillingReconcileAccountChange(t *testing.T) {
	billed := stripetest.New(t)
	billed.AddMeter("egress")
	data := t.TempDir()
	srv := startServe(t, data, "--worker-wait", "50ms", "--stripe-rate", "1000", "--stripe-key", stripetest.Key, "--stripe-url", billed.URL)
	const alice = "did:mailto:example.com:alice"
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	recordEgress(t, data, srv.URL, alice, "1000")
	if u := waitSettled(t, data); u.Ledger["reported"] != 1 {
		t.Fatalf("after serve billed: %+v; want alice reported", u)
	}
	srv.stop(t)
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice2")

	now := time.Now().UTC()
	args := []string{"--data-dir", data, "--stripe-key", stripetest.Key, "--stripe-url", billed.URL,
		"--from", now.Add(-time.Hour).Format(time.RFC3339), "--to", now.Add(time.Hour).Format(time.RFC3339), "--settle", "0s"}
	rep := reconcileJSON(t, 0, append(args, "--fix")...)
	if h := hourOf(t, rep, alice); h.Account != "stripe:cus_alice" || !h.Former || h.Status != stripe.Match || h.Ledger != 1000 || len(rep.Actions) != 0 {
		t.Fatalf("after the move: %+v, actions %+v; want cus_alice's 1000 matching, nothing sent", h, rep.Actions)
	}
	if got := billed.Totals(); got["cus_alice"] != 1000 || got["cus_alice2"] != 0 {
		t.Fatalf("Stripe bills %v; want cus_alice's 1000 alone", got)
	}

	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "")
	db, err := embedded.Open(context.Background(), data, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := db.Ledger
	ev := billing.Event{Space: "did:key:z6Mkold", Customer: alice, Resource: "bafkreires", Bytes: 500, ServedAt: now, Cause: "bafy-before-accounts"}
	_, batches, err := l.Record(context.Background(), []billing.Event{ev}, billing.BatchRule{})
	if err == nil {
		err = l.Settle(context.Background(), billing.Settlement{Batch: batches[0], State: billing.Reported})
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, status := reconcileRun(t, append(args, "--fix")...)
	if status != 1 || !strings.Contains(out, "skipped "+alice+": no Stripe account; 500 reported bytes in the range unexamined") ||
		!strings.Contains(out, "stripe:cus_alice (former)") || !strings.Contains(errOut, "reported bytes compared with no account: "+alice+" 500 bytes") {
		t.Fatalf("without an account (exit %d):\n%s\n%s", status, out, errOut)
	}
}

// TestBillingReconcileFlags: bad ranges are refused in one line, before
// anything is opened or called.
func TestBillingReconcileFlags(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "2026-05-02T00:00:00Z"}, "--from and --to are required"},
		{[]string{"--from", "yesterday", "--to", "2026-05-02T00:00:00Z"}, `--from "yesterday": want RFC 3339`},
		{[]string{"--from", "2026-05-02T00:00:00Z", "--to", "2026-05-01T00:00:00Z"}, "the range is empty"},
		{[]string{"--from", "2026-05-01T00:00:00Z", "--to", "2026-07-01T00:00:00Z"}, "at most 36 days"},
		{[]string{"--from", "2026-05-01T00:00:00Z", "--to", "2026-05-02T00:00:00Z", "--customer", "alice"}, "expected a did:mailto DID"},
		{[]string{"--from", "2026-05-01T00:00:00Z", "--to", "2026-05-02T00:00:00Z"}, "needs a Stripe key"},
	} {
		_, errOut, status := reconcileRun(t, append([]string{"--data-dir", data}, c.args...)...)
		if status != 1 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", c.args, status, errOut, c.want)
		}
	}
}
