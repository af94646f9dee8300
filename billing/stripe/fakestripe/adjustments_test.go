package fakestripe_test

import (
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v81"
)

func cancelParams(eventName, identifier string) *stripe.BillingMeterEventAdjustmentParams {
	return &stripe.BillingMeterEventAdjustmentParams{
		EventName: stripe.String(eventName),
		Type:      stripe.String("cancel"),
		Cancel:    &stripe.BillingMeterEventAdjustmentCancelParams{Identifier: stripe.String(identifier)},
	}
}

// TestCancelWithin24Hours: a cancelled event leaves the totals and the
// summaries; an event received 24 hours ago or more can no longer be
// cancelled.
func TestCancelWithin24Hours(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	id := f.AddMeter("egress")
	c := newClients(t, f)
	ts := clock.Now().Add(-time.Hour)
	for _, identifier := range []string{"keep", "undo", "old"} {
		if _, err := c.events.New(meterEvent("egress", identifier, "cus_a", 10, ts)); err != nil {
			t.Fatal(err)
		}
		if identifier == "undo" {
			clock.advance(time.Hour) // "old" is received an hour after the others
		}
	}

	clock.advance(22*time.Hour + 59*time.Minute) // "keep" and "undo" are 23:59 old
	adj, err := c.adjustments.New(cancelParams("egress", "undo"))
	if err != nil {
		t.Fatal(err)
	}
	if adj.Object != "billing.meter_event_adjustment" || adj.Status != "pending" || adj.Type != "cancel" || adj.Cancel.Identifier != "undo" {
		t.Fatalf("adjustment %+v", adj)
	}
	if !f.Events()["undo"].Cancelled || f.Totals()["cus_a"] != 20 {
		t.Fatalf("after cancel: %+v, totals %v", f.Events()["undo"], f.Totals())
	}
	start := ts.Truncate(time.Hour).Unix()
	if s := summaries(t, c, id, "cus_a", start, start+3600, "", 0); s[0].AggregatedValue != 20 {
		t.Fatalf("summary after cancel: %v", s[0].AggregatedValue)
	}

	clock.advance(time.Minute) // "keep" is now 24 hours old
	_, err = c.adjustments.New(cancelParams("egress", "keep"))
	if se := stripeError(t, err); se.HTTPStatusCode != 400 {
		t.Fatalf("cancel after 24 hours: %+v", se)
	}
	if _, err := c.adjustments.New(cancelParams("egress", "old")); err != nil {
		t.Fatalf("cancel of an event 23 hours old: %v", err)
	}
	if f.Events()["keep"].Cancelled || f.Totals()["cus_a"] != 10 {
		t.Fatalf("totals %v", f.Totals())
	}
}

func TestCancelRefusals(t *testing.T) {
	f := newFake(t)
	f.AddMeter("egress")
	c := newClients(t, f)
	if _, err := c.events.New(meterEvent("egress", "sent", "cus_a", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	noType := cancelParams("egress", "sent")
	noType.Type = nil
	for name, p := range map[string]*stripe.BillingMeterEventAdjustmentParams{
		"unknown identifier": cancelParams("egress", "never-sent"),
		"other meter":        cancelParams("storage", "sent"),
		"no type":            noType,
	} {
		_, err := c.adjustments.New(p)
		if se := stripeError(t, err); se.HTTPStatusCode != 400 {
			t.Errorf("%s: %+v", name, se)
		}
	}
	if f.Events()["sent"].Cancelled {
		t.Fatal("a refused adjustment cancelled the event")
	}
}
