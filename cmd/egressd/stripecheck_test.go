package main_test

import (
	"strings"
	"testing"

	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// TestWrongStripeSetUpStopsAtStart: serve (with its worker) and the worker
// sidecar check the Stripe key and the meter before anything else, and
// stop with a message saying what to fix.
func TestWrongStripeSetUpStopsAtStart(t *testing.T) {
	fake := stripetest.New(t)
	fake.AddMeter("gateway-egress-traffic")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--stripe-key", stripetest.Key}, `no active meter with event name "egress"`},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--stripe-key", stripetest.Key}, `no active meter with event name "egress"`},
		{[]string{"worker", "--stripe-key", "sk_test_wrong", "--stripe-meter-event", "gateway-egress-traffic"}, "refused the key"},
	} {
		args := append(c.args, "--data-dir", t.TempDir(), "--stripe-url", fake.URL)
		if stderr := runFails(t, args...); !strings.Contains(stderr, c.want) {
			t.Errorf("egressd %s: %q, want %q", strings.Join(c.args, " "), stderr, c.want)
		}
	}
}
