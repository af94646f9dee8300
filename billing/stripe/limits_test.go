package stripe_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/internal/testenv"
)

// TestValueLimits: Stripe rejects meter event values of more than 15
// digits, and takes negative ones as corrections. Such values are refused
// for good before any call, on either API; the largest 15-digit value is
// sent.
func TestValueLimits(t *testing.T) {
	tests := []struct {
		bytes  int64
		sent   bool
		reason string
	}{
		{bytes: 1, sent: true},
		{bytes: stripe.MaxValue, sent: true},
		{bytes: stripe.MaxValue + 1, reason: "16 digits: Stripe takes at most 15 (up to 999999999999999)"},
		{bytes: math.MaxInt64, reason: "19 digits: Stripe takes at most 15"},
		{bytes: 0, reason: "must be a positive number of bytes"},
		{bytes: -5, reason: "must be a positive number of bytes"},
	}
	for _, api := range stripe.APIs {
		for _, tc := range tests {
			t.Run(api+"/"+strconv.FormatInt(tc.bytes, 10), func(t *testing.T) {
				fake := stripetest.New(t)
				b := testBatch("bafy-value-" + strconv.FormatInt(tc.bytes, 10))
				b.Bytes = tc.bytes
				err := reportOne(t, newReporter(t, fake.URL, api), "stripe:cus_alice", b)
				if tc.sent {
					if err != nil || fake.Events()[b.ID].Value != tc.bytes || fake.Totals()["cus_alice"] != tc.bytes {
						t.Fatalf("Report = %v, Stripe has %+v; want the value %d sent and billed", err, fake.Events()[b.ID], tc.bytes)
					}
					return
				}
				var re *billing.ReportError
				if !errors.As(err, &re) || re.Retryable || !strings.Contains(re.Reason, tc.reason) {
					t.Fatalf("Report = %v; want a final ReportError saying %q", err, tc.reason)
				}
				if fake.Calls() != 0 || fake.Requests(stripetest.StreamEndpoint) != 0 {
					t.Fatal("Stripe was called with a value it rejects")
				}
			})
		}
	}
}

// TestMaxValueReachesStripeMock sends the largest value to stripe-mock,
// which checks the request against Stripe's OpenAPI spec.
func TestMaxValueReachesStripeMock(t *testing.T) {
	url := testenv.URL(t, testenv.Stripe)
	testenv.Reachable(t, url)
	b := testBatch("bafy-max-value")
	b.Bytes = stripe.MaxValue
	if err := reportOne(t, newReporter(t, url, stripe.APIV1), "stripe:cus_alice", b); err != nil {
		t.Fatalf("stripe-mock refused a meter event of value %d: %v", b.Bytes, err)
	}
}
