package stripe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
)

// TestDuplicateIdentifierIsAlreadyCounted: Stripe answers a meter event
// whose identifier it already holds with a 400 invalid_request_error and no
// code. That is an earlier attempt that got through (its reply was lost),
// not a rejection: Report must succeed, or the event would be marked
// unbillable while Stripe bills it. Any other 400 stays a rejection.
func TestDuplicateIdentifierIsAlreadyCounted(t *testing.T) {
	for _, tc := range []struct {
		message string
		ok      bool
	}{
		{"An event already exists with identifier bafy-dup.", true},
		{"No such customer: 'cus_gone'", false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Stripe-Should-Retry", "false")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"` + tc.message + `"}}`))
		}))
		r, err := stripe.New(stripe.Config{Key: "sk_test_dup", URL: srv.URL, EventName: "egress", Rate: 1000, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Report(context.Background(), "stripe:cus_a", billing.Event{
			Space: "did:key:s", Customer: "did:mailto:a", Resource: "r", Bytes: 5, ServedAt: time.Now(), Cause: "bafy-dup",
		})
		srv.Close()
		if (err == nil) != tc.ok {
			t.Errorf("%q: Report = %v, want ok=%v", tc.message, err, tc.ok)
		}
	}
}
