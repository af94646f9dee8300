package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	stripego "github.com/stripe/stripe-go/v81"
)

// Check asks Stripe, once at start, whether the key works and an active
// meter has the configured event name, so that a wrong key or a missing
// meter stops the process with a clear message instead of being found
// event by event.
func (r *Reporter) Check(ctx context.Context) error {
	params := &stripego.BillingMeterListParams{Status: stripego.String(string(stripego.BillingMeterStatusActive))}
	params.Context = ctx
	params.Limit = stripego.Int64(100)
	var names []string
	it := r.meters.List(params)
	for it.Next() {
		m := it.BillingMeter()
		if m.EventName == r.eventName {
			return nil
		}
		names = append(names, m.EventName)
	}
	if err := it.Err(); err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && (se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden) {
			return fmt.Errorf("Stripe refused the key (%d %s): check --stripe-key or STRIPE_SECRET_KEY", se.HTTPStatusCode, se.Msg)
		}
		return fmt.Errorf("asking Stripe for its meters: %w", err)
	}
	return fmt.Errorf("Stripe has no active meter with event name %q (it has %q): create one in the Dashboard (Billing, Meters), or set --stripe-meter-event", r.eventName, names)
}
