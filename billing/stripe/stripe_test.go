package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

func newReporter(t *testing.T, url, api string) *stripe.Reporter {
	t.Helper()
	r, err := stripe.New(stripe.Config{Key: stripetest.Key, URL: url, API: api, EventName: "egress-test", Rate: 1000, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testBatch is a batch of one event (its cause the batch ID), served a
// minute ago.
func testBatch(id string) billing.Batch {
	return billing.Batch{
		ID: id, Customer: "did:mailto:example.com:alice", Timestamp: time.Now().Add(-time.Minute).Truncate(time.Millisecond),
		Bytes: 1048576, Events: 1, State: billing.Pending,
	}
}

// reportOne reports one charge and returns its error.
func reportOne(t *testing.T, r *stripe.Reporter, account string, b billing.Batch) error {
	t.Helper()
	errs := r.Report(context.Background(), []billing.Charge{{Account: account, Batch: b}})
	if len(errs) != 1 {
		t.Fatalf("Report returned %d errors for 1 charge", len(errs))
	}
	return errs[0]
}

// TestLimits: what the worker is told about each API, and that nothing else
// is taken for one.
func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		api  string
		want billing.SinkLimits
	}{
		{"", billing.SinkLimits{MaxCharges: 1, OneCallPerCustomer: true, Aggregate: true, MaxValue: stripe.MaxValue}},
		{stripe.APIV1, billing.SinkLimits{MaxCharges: 1, OneCallPerCustomer: true, Aggregate: true, MaxValue: stripe.MaxValue}},
		{stripe.APIV2, billing.SinkLimits{MaxCharges: 100, MaxValue: stripe.MaxValue}},
	} {
		r := newReporter(t, "http://127.0.0.1:1", tc.api)
		if got := r.Limits(); got != tc.want || r.Name() != "stripe" {
			t.Errorf("API %q: %s limits %+v, want %+v", tc.api, r.Name(), got, tc.want)
		}
	}
	if _, err := stripe.New(stripe.Config{Key: stripetest.Key, API: "v3"}); err == nil || !strings.Contains(err.Error(), "want v1 or v2") {
		t.Errorf("API v3: err = %v", err)
	}
}

// TestV1SendsTheBatch checks the request Stripe receives for a batch of
// several events: the event name, customer, the batch's total as value, its
// timestamp, and an identifier and idempotency key that depend only on
// what the ledger stores of the batch.
func TestV1SendsTheBatch(t *testing.T) {
	fake := stripetest.New(t)
	r := newReporter(t, fake.URL, stripe.APIV1)
	b := testBatch("bafyreihk7626rzxqqzninetfhkmormhzwtk7yf47ec6wzees2ys4lb4xja")
	b.Bytes, b.Events = 1048576+2048+7, 3
	if err := reportOne(t, r, "stripe:cus_alice", b); err != nil {
		t.Fatal(err)
	}
	got, ok := fake.Events()[b.ID]
	if !ok {
		t.Fatalf("no meter event with identifier %s; have %v", b.ID, fake.Events())
	}
	if got.EventName != "egress-test" || got.Customer != "cus_alice" || got.Value != 1050631 || got.Timestamp != b.Timestamp.Unix() || got.Stream {
		t.Fatalf("meter event = %+v", got)
	}
	wantKey := stripe.IdempotencyKey(b.ID, "egress-test", "cus_alice", "1050631", b.Timestamp.Unix())
	if got.IdempotencyKey != wantKey || !strings.HasPrefix(wantKey, "egressd-"+b.ID+"-") {
		t.Fatalf("idempotency key %q, want %q", got.IdempotencyKey, wantKey)
	}
	// Reporting again is harmless: the same request, replayed by Stripe.
	if err := reportOne(t, r, "stripe:cus_alice", b); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Events()); n != 1 || fake.Calls() != 2 || fake.Totals()["cus_alice"] != 1050631 {
		t.Fatalf("after a repeat: %d events from %d calls, total %d; want 1 from 2, 1050631", n, fake.Calls(), fake.Totals()["cus_alice"])
	}
}

// TestResendGoesUnderANewIdentifier: a redrive of a batch Stripe accepted
// and then rejected sends it under "<ID>-r<n>", which Stripe counts (the
// first identifier stays taken for 24 hours), and sending that resend again
// counts nothing more; on both APIs.
func TestResendGoesUnderANewIdentifier(t *testing.T) {
	for _, api := range stripe.APIs {
		t.Run(api, func(t *testing.T) {
			fake := stripetest.New(t)
			fake.AddCustomer("cus_alice")
			r := newReporter(t, fake.URL, api)
			b := testBatch("bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
			// Stripe takes it, then rejects it: the customer was unknown.
			if err := reportOne(t, r, "stripe:cus_bob", b); err != nil {
				t.Fatal(err)
			}
			fake.AddCustomer("cus_bob")
			b.Resend = 1
			for range 2 {
				if err := reportOne(t, r, "stripe:cus_bob", b); err != nil {
					t.Fatal(err)
				}
			}
			ev, ok := fake.Events()[b.ID+"-r1"]
			if !ok || ev.Value != b.Bytes || ev.Customer != "cus_bob" || ev.Error != "" {
				t.Fatalf("resend: %+v (found %v); events %v", ev, ok, fake.Events())
			}
			if first := fake.Events()[b.ID]; first.Error == "" {
				t.Fatalf("the first send was not rejected: %+v", first)
			}
			if got := fake.Totals()["cus_bob"]; got != b.Bytes || len(fake.Accepted()) != 2 {
				t.Fatalf("cus_bob billed %d from %d accepted events, want %d from 2", got, len(fake.Accepted()), b.Bytes)
			}
		})
	}
}

func TestIdentifierFitsStripe(t *testing.T) {
	long := strings.Repeat("b", 150)
	id := stripe.Identifier(long)
	if len(id) > 100 || id != stripe.Identifier(long) || id == stripe.Identifier(long+"x") {
		t.Fatalf("identifier of a long batch ID = %q (%d chars): must be ≤ 100, stable and distinct", id, len(id))
	}
	if id := stripe.BatchIdentifier(billing.Batch{ID: long, Resend: 3}); len(id) > 100 || id == stripe.Identifier(long) {
		t.Fatalf("identifier of a resent long batch ID = %q", id)
	}
	if key := stripe.IdempotencyKey(id, strings.Repeat("e", 100), "cus_x", "1", 1); len(key) > 255 {
		t.Fatalf("idempotency key of %d chars, Stripe allows 255", len(key))
	}
}

// TestClassifyStripeAnswers checks which v1 failures the worker retries,
// which are final, and that stripe-go itself never retries (one call each).
func TestClassifyStripeAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		ok         bool
		retry      bool
		after      time.Duration
		reasonPart string
	}{
		{name: "created", status: 200, body: `{"object":"billing.meter_event"}`, ok: true},
		{name: "rate limited", status: 429, body: `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}`, retry: true, reasonPart: "429"},
		{name: "rate limited with Retry-After", status: 429, header: map[string]string{"Retry-After": "3"}, body: `{"error":{"type":"invalid_request_error","message":"slow down"}}`, retry: true, after: 3 * time.Second},
		{name: "server error", status: 500, body: `{"error":{"type":"api_error","message":"oops"}}`, retry: true, reasonPart: "oops"},
		{name: "proxy error page", status: 502, body: `<html>bad gateway</html>`, retry: true},
		{name: "lock timeout", status: 409, body: `{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"busy"}}`, retry: true},
		{name: "invalid", status: 400, body: `{"error":{"type":"invalid_request_error","message":"No such customer: 'cus_x'"}}`, reasonPart: "No such customer: 'cus_x'"},
		{name: "bad key", status: 401, body: `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`, reasonPart: "Invalid API Key"},
		{name: "Stripe says retry a 400", status: 400, header: map[string]string{"Stripe-Should-Retry": "true"}, body: `{"error":{"type":"invalid_request_error","message":"try again"}}`, retry: true},
		{name: "Stripe says do not retry a 500", status: 500, header: map[string]string{"Stripe-Should-Retry": "false"}, body: `{"error":{"type":"api_error","message":"no"}}`, reasonPart: "500"},
		{name: "identifier already reported", status: 400, body: `{"error":{"type":"invalid_request_error","code":"resource_already_exists","message":"exists"}}`, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			err := reportOne(t, newReporter(t, srv.URL, stripe.APIV1), "stripe:cus_x", testBatch("bafy-classify"))
			if calls.Load() != 1 {
				t.Fatalf("%d HTTP calls, want exactly 1 (retries belong to the worker)", calls.Load())
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			var re *billing.ReportError
			if !errors.As(err, &re) {
				t.Fatalf("err = %#v, want a *billing.ReportError", err)
			}
			if re.Retryable != tt.retry || re.RetryAfter != tt.after || !strings.Contains(re.Reason, tt.reasonPart) {
				t.Fatalf("got retry %v after %v reason %q; want retry %v after %v reason containing %q",
					re.Retryable, re.RetryAfter, re.Reason, tt.retry, tt.after, tt.reasonPart)
			}
		})
	}
}

func TestDroppedConnectionIsRetryable(t *testing.T) {
	fake := stripetest.New(t)
	fake.SetFault(func(int, stripetest.MeterEvent) stripetest.Fault { return stripetest.DropBefore })
	err := reportOne(t, newReporter(t, fake.URL, stripe.APIV1), "stripe:cus_x", testBatch("bafy-drop"))
	var re *billing.ReportError
	if !errors.As(err, &re) || !re.Retryable {
		t.Fatalf("err = %v, want a retryable ReportError", err)
	}
	if fake.Calls() != 1 {
		t.Fatalf("%d calls, want 1", fake.Calls())
	}
}

func TestNotAStripeAccount(t *testing.T) {
	for _, api := range stripe.APIs {
		fake := stripetest.New(t)
		err := reportOne(t, newReporter(t, fake.URL, api), "paypal:abc", testBatch("bafy-acct"))
		var re *billing.ReportError
		if !errors.As(err, &re) || re.Retryable || !strings.Contains(re.Reason, "not a Stripe customer") {
			t.Fatalf("%s: err = %v, want a final ReportError about the account", api, err)
		}
		if fake.Calls() != 0 || fake.Requests(stripetest.SessionEndpoint) != 0 || fake.Requests(stripetest.StreamEndpoint) != 0 {
			t.Fatalf("%s: Stripe was called for an account it cannot know", api)
		}
	}
}
