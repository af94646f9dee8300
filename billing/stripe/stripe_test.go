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

func newReporter(t *testing.T, url string) *stripe.Reporter {
	t.Helper()
	r, err := stripe.New(stripe.Config{Key: stripetest.Key, URL: url, EventName: "egress-test", Rate: 1000, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testEvent(cause string) billing.Event {
	return billing.Event{
		Space: "did:key:z6Mkspace", Customer: "did:mailto:example.com:alice", Resource: "bafkreires",
		Bytes: 1048576, ServedAt: time.Now().Add(-time.Minute).Truncate(time.Millisecond), Cause: cause,
	}
}

// TestReportSendsTheMeterEvent checks the request Stripe receives: the
// event name, customer, value and timestamp, and an identifier and
// idempotency key that depend only on the event.
func TestReportSendsTheMeterEvent(t *testing.T) {
	fake := stripetest.New(t)
	r := newReporter(t, fake.URL)
	ev := testEvent("bafyreihk7626rzxqqzninetfhkmormhzwtk7yf47ec6wzees2ys4lb4xja")
	if err := r.Report(context.Background(), "stripe:cus_alice", ev); err != nil {
		t.Fatal(err)
	}
	got, ok := fake.Events()[ev.Cause]
	if !ok {
		t.Fatalf("no meter event with identifier %s; have %v", ev.Cause, fake.Events())
	}
	if got.EventName != "egress-test" || got.Customer != "cus_alice" || got.Value != ev.Bytes || got.Timestamp != ev.ServedAt.Unix() {
		t.Fatalf("meter event = %+v", got)
	}
	wantKey := stripe.IdempotencyKey(ev.Cause, "egress-test", "cus_alice", "1048576", ev.ServedAt.Unix())
	if got.IdempotencyKey != wantKey || !strings.HasPrefix(wantKey, "egressd-"+ev.Cause+"-") {
		t.Fatalf("idempotency key %q, want %q", got.IdempotencyKey, wantKey)
	}
	// Reporting again is harmless: the same request, replayed by Stripe.
	if err := r.Report(context.Background(), "stripe:cus_alice", ev); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Events()); n != 1 || fake.Calls() != 2 {
		t.Fatalf("after a repeat: %d events from %d calls, want 1 from 2", n, fake.Calls())
	}
}

func TestIdentifierFitsStripe(t *testing.T) {
	long := strings.Repeat("b", 150)
	id := stripe.Identifier(long)
	if len(id) > 100 || id != stripe.Identifier(long) || id == stripe.Identifier(long+"x") {
		t.Fatalf("identifier of a long cause = %q (%d chars): must be ≤ 100, stable and distinct", id, len(id))
	}
	if key := stripe.IdempotencyKey(id, strings.Repeat("e", 100), "cus_x", "1", 1); len(key) > 255 {
		t.Fatalf("idempotency key of %d chars, Stripe allows 255", len(key))
	}
}

// TestClassifyStripeAnswers checks which failures the worker retries, which
// are final, and that stripe-go itself never retries (one call each).
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
			err := newReporter(t, srv.URL).Report(context.Background(), "stripe:cus_x", testEvent("bafy-classify"))
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
	err := newReporter(t, fake.URL).Report(context.Background(), "stripe:cus_x", testEvent("bafy-drop"))
	var re *billing.ReportError
	if !errors.As(err, &re) || !re.Retryable {
		t.Fatalf("err = %v, want a retryable ReportError", err)
	}
	if fake.Calls() != 1 {
		t.Fatalf("%d calls, want 1", fake.Calls())
	}
}

func TestNotAStripeAccount(t *testing.T) {
	fake := stripetest.New(t)
	err := newReporter(t, fake.URL).Report(context.Background(), "paypal:abc", testEvent("bafy-acct"))
	var re *billing.ReportError
	if !errors.As(err, &re) || re.Retryable || !strings.Contains(re.Reason, "not a Stripe customer") {
		t.Fatalf("err = %v, want a final ReportError about the account", err)
	}
	if fake.Calls() != 0 {
		t.Fatalf("Stripe was called %d times for an account it cannot know", fake.Calls())
	}
}
