package stripe_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/egressd/egressd/billing/stripe"
)

// TestDuplicateIdentifierIsAlreadyCounted: Stripe answers a v1 meter event
// whose identifier it already holds with a 400 invalid_request_error and no
// code. That is an earlier attempt that got through (its reply was lost),
// not a rejection: Report must succeed, or the batch would be marked
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
		err := reportOne(t, newReporter(t, srv.URL, stripe.APIV1), "stripe:cus_a", testBatch("bafy-dup"))
		srv.Close()
		if (err == nil) != tc.ok {
			t.Errorf("%q: Report = %v, want ok=%v", tc.message, err, tc.ok)
		}
	}
}
