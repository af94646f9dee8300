package stripetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxStreamEvents is the most events one meter event stream request may
// carry (API reference v2, Create meter events on the stream, events).
const maxStreamEvents = 100

// createSession serves POST /v2/billing/meter_event_session, authenticated
// with the secret key: a v2.billing.meter_event_session whose
// authentication_token authenticates the stream until expires_at. v2 writes
// times as RFC 3339 strings (stripe-go v81's example/v2/meter_event_stream
// reads expires_at as one).
func (f *Fake) createSession(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	f.mu.Lock()
	now := f.clock()
	token := newID("mes_auth_test_")
	expires := now.Add(f.sessionLifetime)
	f.sessions[token] = expires
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                   newID("mes_test_"),
		"object":               "v2.billing.meter_event_session",
		"authentication_token": token,
		"created":              v2Time(now),
		"expires_at":           v2Time(expires),
		"livemode":             false,
	})
}

// streamRequest is the body of POST /v2/billing/meter_event_stream.
type streamRequest struct {
	Events []struct {
		EventName  string            `json:"event_name"`
		Identifier string            `json:"identifier"`
		Payload    map[string]string `json:"payload"`
		Timestamp  string            `json:"timestamp"`
	} `json:"events"`
}

// stream serves POST /v2/billing/meter_event_stream, authenticated with a
// session token. Stripe checks only the request's shape before answering
// 200 {} and validates each event later (API reference v2, Create meter
// events on the stream): an event with no meter, no or an unknown customer,
// a bad value or a timestamp out of range is accepted, kept out of the
// totals, and reported by the next ReportErrors. A repeated identifier is
// dropped without a word, as nothing is answered per event.
func (f *Fake) stream(w http.ResponseWriter, r *http.Request) {
	if err := f.checkSession(r.Header.Get("Authorization")); err != nil {
		err.write(w)
		return
	}
	var req streamRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		invalid("", "", "Invalid JSON body: "+err.Error()).write(w)
		return
	}
	switch n := len(req.Events); {
	case n == 0:
		invalid("parameter_missing", "events", "Missing required param: events.").write(w)
		return
	case n > maxStreamEvents:
		invalid("", "events", fmt.Sprintf("%d events: a request carries at most %d.", n, maxStreamEvents)).write(w)
		return
	}
	times := make([]time.Time, len(req.Events))
	for i, e := range req.Events {
		if e.EventName == "" || e.Payload == nil {
			invalid("parameter_missing", fmt.Sprintf("events[%d]", i), "Each event needs event_name and payload.").write(w)
			return
		}
		if e.Timestamp != "" {
			t, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if err != nil {
				invalid("", fmt.Sprintf("events[%d].timestamp", i), "Invalid date-time: "+e.Timestamp).write(w)
				return
			}
			times[i] = t
		}
	}

	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)

	f.mu.Lock()
	now := f.clock()
	for i, e := range req.Events {
		ev := &MeterEvent{Identifier: e.Identifier, EventName: e.EventName, Customer: e.Payload["stripe_customer_id"],
			Received: now, Stream: true, Timestamp: now.Unix()}
		if ev.Identifier == "" {
			ev.Identifier = newID("fake_")
		}
		if prev, ok := f.byIdentifier[ev.Identifier]; ok && now.Sub(prev.Received) < f.dedupWindow {
			continue
		}
		if !times[i].IsZero() {
			ev.Timestamp = times[i].Unix()
		}
		value := e.Payload["value"]
		ev.Value, _ = strconv.ParseInt(value, 10, 64)
		code, msg := f.checkStreamEvent(ev, value, now)
		f.accept(ev, code, msg)
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{})
}

// checkStreamEvent makes the checks Stripe makes of a stream event after
// answering, and answers the first error's code ("" if none), as its error
// reports name it. f.mu must be held.
func (f *Fake) checkStreamEvent(ev *MeterEvent, value string, now time.Time) (code, msg string) {
	if f.meterFor(ev.EventName) == nil {
		return "no_meter", "No active meter found for event_name '" + ev.EventName + "'."
	}
	if code, msg = f.checkCustomer(ev.Customer); code != "" {
		return code, msg
	}
	if code, msg = checkValue(value); code != "" {
		return code, msg
	}
	return checkTimestamp(time.Unix(ev.Timestamp, 0), now)
}

// checkSession checks a stream request's bearer token. An expired one is the
// 401 Stripe documents for the stream, code
// billing_meter_event_session_expired, with the v2 error type
// temporary_session_expired (the type Stripe's SDKs generated from its
// OpenAPI spec map to TemporarySessionExpiredError).
func (f *Fake) checkSession(authorization string) *apiError {
	token, _ := strings.CutPrefix(authorization, "Bearer ")
	f.mu.Lock()
	expires, ok := f.sessions[token]
	now := f.clock()
	f.mu.Unlock()
	switch {
	case !ok:
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			msg: "Invalid meter event session token: create one with POST /v2/billing/meter_event_session."}
	case !now.Before(expires):
		return &apiError{status: http.StatusUnauthorized, typ: "temporary_session_expired", code: "billing_meter_event_session_expired",
			msg: "The meter event session expired at " + v2Time(expires) + ": create a new one."}
	}
	return nil
}
