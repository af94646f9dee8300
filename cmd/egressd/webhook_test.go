package main_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// TestStripeRejectionsThroughWebhook is the tour of Stripe's asynchronous
// errors: Stripe takes the meter events of a customer it does not know, then
// rejects them in an error report sent to serve's /stripe/webhook. A forged
// or unsigned delivery changes nothing; a signed one makes the entry
// rejected, visible in usage and billing list; delivering it again changes
// nothing; once the customer exists, billing redrive --state rejected bills
// each event exactly once, under a new identifier, however often it runs.
func TestStripeRejectionsThroughWebhook(t *testing.T) {
	const secret = "whsec_egressd_test"
	fake := stripetest.New(t)
	fake.AddMeter("egress")
	fake.AddCustomer("cus_alice")
	stripeFlags := []string{"--stripe-key", stripetest.Key, "--stripe-url", fake.URL}
	data := t.TempDir()
	srv := startServe(t, data, append([]string{"--worker-wait", "50ms", "--stripe-rate", "1000", "--stripe-webhook-secret", secret}, stripeFlags...)...)
	hook := srv.URL + "/stripe/webhook"

	const alice, bob, carol = "did:mailto:example.com:alice", "did:mailto:example.com:bob", "did:mailto:example.com:carol"
	for _, c := range []struct{ customer, stripe string }{{alice, "cus_alice"}, {bob, "cus_bob"}, {carol, "cus_carol"}} {
		run(t, "customer", "set", "--data-dir", data, "--customer", c.customer, "--stripe-customer", c.stripe)
	}
	recordEgress(t, data, srv.URL, alice, "1000")
	recordEgress(t, data, srv.URL, bob, "2000")
	if u := waitSettled(t, data); u.Ledger["reported"] != 2 {
		t.Fatalf("before Stripe's report: %+v; want both reported (Stripe answered 200)", u)
	}

	// Stripe publishes its report; the delivery is made by hand first.
	ids := fake.ReportErrors()
	if len(ids) != 1 {
		t.Fatalf("ReportErrors = %v, want one error report", ids)
	}
	payload, _ := json.Marshal(map[string]any{"id": ids[0], "object": "v2.core.event", "type": stripetest.ErrorReportTriggered})
	for name, sig := range map[string]string{
		"forged":  stripetest.Signature(payload, "whsec_someone_else", time.Now()),
		"stale":   stripetest.Signature(payload, secret, time.Now().Add(-time.Hour)),
		"missing": "",
	} {
		if status := postWebhook(t, hook, payload, sig); status != http.StatusBadRequest {
			t.Errorf("%s signature: status %d, want 400", name, status)
		}
	}
	if u := usage(t, data); u.Ledger["reported"] != 2 || u.Ledger["rejected"] != 0 {
		t.Fatalf("after refused deliveries: %+v; want nothing changed", u)
	}
	for range 2 {
		if status := postWebhook(t, hook, payload, stripetest.Signature(payload, secret, time.Now())); status != http.StatusOK {
			t.Fatalf("signed delivery: status %d, want 200", status)
		}
		if u := usage(t, data); u.Ledger["reported"] != 1 || u.Ledger["rejected"] != 1 || u.Events != 2 {
			t.Fatalf("after the signed delivery: %+v; want alice reported, bob rejected, both counted", u)
		}
	}
	list := run(t, "billing", "list", "--data-dir", data, "--state", "rejected")
	if !strings.Contains(list, bob) || !strings.Contains(list, "meter_event_customer_not_found: Customer cus_bob does not exist.") || strings.Contains(list, alice) {
		t.Fatalf("billing list --state rejected should show bob's event with Stripe's code and message:\n%s", list)
	}
	if table := run(t, "usage", "--data-dir", data); !strings.Contains(table, "rejected 1") {
		t.Fatalf("usage does not show the rejected event:\n%s", table)
	}
	other, _ := json.Marshal(map[string]any{"id": "evt_other", "object": "v2.core.event", "type": "v1.billing.meter.created"})
	if status := postWebhook(t, hook, other, stripetest.Signature(other, secret, time.Now())); status != http.StatusOK {
		t.Fatalf("another event type: status %d, want 200 (ignored)", status)
	}

	// The fake's own delivery, as an event destination makes it.
	fake.SetWebhook(hook, secret)
	recordEgress(t, data, srv.URL, carol, "4000")
	waitSettled(t, data)
	if ids := fake.ReportErrors(); len(ids) != 1 {
		t.Fatalf("second report = %v, want one", ids)
	}
	if d := fake.Deliveries(); len(d) != 1 || d[0].Status != http.StatusOK {
		t.Fatalf("deliveries = %+v, want one answered 200", d)
	}
	if u := usage(t, data); u.Ledger["rejected"] != 2 {
		t.Fatalf("after the fake's delivery: %+v; want bob and carol rejected", u)
	}

	// Once the customers exist, redrive bills each event once.
	fake.AddCustomer("cus_bob")
	fake.AddCustomer("cus_carol")
	redrive := append([]string{"billing", "redrive", "--data-dir", data, "--state", "rejected"}, stripeFlags...)
	if out := run(t, redrive...); !strings.Contains(out, "reported 2") {
		t.Fatalf("billing redrive printed %q, want 2 reported", out)
	}
	if out := run(t, redrive...); !strings.Contains(out, "no entries matched") {
		t.Fatalf("second billing redrive printed %q, want nothing to do", out)
	}
	if ids := fake.ReportErrors(); len(ids) != 0 {
		t.Fatalf("Stripe rejected the redriven events again: %v", ids)
	}
	// alice, bob and carol once each, then bob and carol under new
	// identifiers: the second redrive sent nothing.
	if n := len(fake.Accepted()); n != 5 {
		t.Fatalf("Stripe accepted %d meter events, want 5", n)
	}
	totals := fake.Totals()
	if totals["cus_alice"] != 1000 || totals["cus_bob"] != 2000 || totals["cus_carol"] != 4000 {
		t.Fatalf("Stripe bills %v; want each event once", totals)
	}
	// The first report, delivered again late, is about identifiers the
	// redrive replaced: nothing changes.
	if status := postWebhook(t, hook, payload, stripetest.Signature(payload, secret, time.Now())); status != http.StatusOK {
		t.Fatalf("late redelivery: status %d, want 200", status)
	}
	if u := usage(t, data); u.Ledger["reported"] != 3 || u.Ledger["rejected"] != 0 || u.Events != 3 {
		t.Fatalf("at the end: %+v; want all three reported, each counted once", u)
	}
	srv.stop(t)
}

// postWebhook POSTs payload to url with the Stripe-Signature sig (none if
// empty) and returns the status.
func postWebhook(t *testing.T, url string, payload []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
