package main

import (
	"flag"
	"testing"

	"github.com/peterbourgon/ff/v3"
)

// TestMeterEventDefault: --stripe-meter-event defaults to egress, and to
// Storacha's meter with --storacha (flag or EGRESSD_STORACHA), unless set.
func TestMeterEventDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "egress"},
		{[]string{"--storacha"}, "", "gateway-egress-traffic"},
		{nil, "true", "gateway-egress-traffic"},
		{[]string{"--storacha=false"}, "", "egress"},
		{[]string{"--storacha", "--stripe-meter-event", "egress"}, "", "egress"},
		{[]string{"--stripe-meter-event", "mine"}, "true", "mine"},
	} {
		t.Run("", func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("EGRESSD_STORACHA", tc.env)
			}
			var (
				backend backendFlags
				stripe  stripeFlags
			)
			fs := flag.NewFlagSet("worker", flag.ContinueOnError)
			// The stripe flags first: the default must not depend on the order.
			stripe.register(fs)
			backend.register(fs)
			if err := ff.Parse(fs, tc.args, ff.WithEnvVarPrefix("EGRESSD")); err != nil {
				t.Fatal(err)
			}
			if got := stripe.eventName(); got != tc.want {
				t.Errorf("args %v, EGRESSD_STORACHA=%q: meter event %q, want %q", tc.args, tc.env, got, tc.want)
			}
		})
	}
}
