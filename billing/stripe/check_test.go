package stripe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// TestCheckAtStart: a wrong key, or no active meter with the configured
// event name, is found by one call at start, with a message saying what
// to fix; a meter that exists passes.
func TestCheckAtStart(t *testing.T) {
	fake := stripetest.New(t)
	fake.AddMeter("gateway-egress-traffic")
	for _, c := range []struct {
		key, eventName, want string
	}{
		{stripetest.Key, "gateway-egress-traffic", ""},
		{stripetest.Key, "egress", `no active meter with event name "egress"`},
		{"sk_test_wrong", "gateway-egress-traffic", "refused the key"},
	} {
		r, err := stripe.New(stripe.Config{Key: c.key, URL: fake.URL, EventName: c.eventName, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Check(context.Background())
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("key %s, meter %s: Check = %v, want %q", c.key, c.eventName, err, c.want)
		}
	}
}
