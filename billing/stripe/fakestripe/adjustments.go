package fakestripe

import (
	"net/http"
	"time"
)

// cancelWindow is how long after Stripe receives a meter event it can be
// cancelled (API reference, Create a billing meter event adjustment,
// cancel.identifier).
const cancelWindow = 24 * time.Hour

// createAdjustment serves POST /v1/billing/meter_event_adjustments with
// type=cancel, the only type Stripe supports: the event with
// cancel[identifier] leaves the summaries and the totals. Stripe answers
// status "pending" and applies the cancellation asynchronously; the fake
// applies it at once. The reference states the 24-hour limit but not the
// error for an event past it or unknown, so those answers are the fake's own
// 400 invalid_request_error.
func (f *Fake) createAdjustment(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		invalid("", "", "unreadable form body").write(w)
		return
	}
	eventName, typ, id := r.PostForm.Get("event_name"), r.PostForm.Get("type"), r.PostForm.Get("cancel[identifier]")
	switch {
	case eventName == "":
		invalid("parameter_missing", "event_name", "Missing required param: event_name.").write(w)
		return
	case typ == "":
		invalid("parameter_missing", "type", "Missing required param: type.").write(w)
		return
	case typ != "cancel":
		invalid("", "type", "Invalid type: must be cancel").write(w)
		return
	case id == "":
		invalid("parameter_missing", "cancel[identifier]", "Missing required param: cancel[identifier].").write(w)
		return
	}
	if err := f.cancel(eventName, id); err != nil {
		err.write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object":     "billing.meter_event_adjustment",
		"cancel":     map[string]string{"identifier": id},
		"event_name": eventName,
		"livemode":   false,
		"status":     "pending",
		"type":       "cancel",
	})
}

// cancel marks the event with identifier id cancelled.
func (f *Fake) cancel(eventName, id string) *apiError {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.meterFor(eventName) == nil {
		return invalid("", "event_name", "No active meter found for event_name '"+eventName+"'.")
	}
	ev := f.byIdentifier[id]
	if ev == nil || ev.EventName != eventName {
		return invalid("resource_missing", "cancel[identifier]", "No meter event with identifier '"+id+"' for event_name '"+eventName+"'.")
	}
	if age := f.clock().Sub(ev.Received); age >= cancelWindow {
		return invalid("", "cancel[identifier]", "Meter event '"+id+"' was received "+age.Round(time.Minute).String()+
			" ago: only events received in the last 24 hours can be cancelled.")
	}
	ev.Cancelled = true
	return nil
}
