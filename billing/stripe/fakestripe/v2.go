package fakestripe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
// dropped without a word, as nothing is answered per event. A fault set by
// SetStreamFault applies to authenticated, well-formed requests.
func (f *Fake) stream(w http.ResponseWriter, r *http.Request) {
	sw := &streamWriter{ResponseWriter: w}
	var req streamRequest
	defer func() { f.logStream(len(req.Events), sw) }()
	if err := f.checkSession(r.Header.Get("Authorization")); err != nil {
		err.write(sw)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		invalid("", "", "Invalid JSON body: "+err.Error()).write(sw)
		return
	}
	switch n := len(req.Events); {
	case n == 0:
		invalid("parameter_missing", "events", "Missing required param: events.").write(sw)
		return
	case n > maxStreamEvents:
		invalid("", "events", fmt.Sprintf("%d events: a request carries at most %d.", n, maxStreamEvents)).write(sw)
		return
	}
	times := make([]time.Time, len(req.Events))
	for i, e := range req.Events {
		if e.EventName == "" || e.Payload == nil {
			invalid("parameter_missing", fmt.Sprintf("events[%d]", i), "Each event needs event_name and payload.").write(sw)
			return
		}
		if e.Timestamp != "" {
			t, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if err != nil {
				invalid("", fmt.Sprintf("events[%d].timestamp", i), "Invalid date-time: "+e.Timestamp).write(sw)
				return
			}
			times[i] = t
		}
	}

	f.mu.Lock()
	delay, slowDelay := f.delay, f.slowDelay
	fault := None
	if f.streamFault != nil {
		f.streamCalls++
		fault = f.streamFault(f.streamCalls, req.sent(times))
	}
	f.mu.Unlock()
	time.Sleep(delay)

	switch fault {
	case TooManyRequests:
		(&apiError{status: http.StatusTooManyRequests, typ: "invalid_request_error", code: "rate_limit",
			msg: "Too many requests hit the API too quickly."}).write(sw)
		return
	case ServerError:
		(&apiError{status: http.StatusInternalServerError, typ: "api_error", msg: "An unknown error occurred",
			header: http.Header{"Stripe-Should-Retry": {"true"}}}).write(sw)
		return
	case DropBefore:
		drop(sw)
		return
	}

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

	switch fault {
	case ServerErrorAfter:
		(&apiError{status: http.StatusInternalServerError, typ: "api_error", msg: "An unknown error occurred"}).write(sw)
		return
	case DropAfter:
		drop(sw)
		return
	case SlowAfter:
		select {
		case <-time.After(slowDelay):
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(sw, http.StatusOK, map[string]any{})
}

// sent is the request's events as a fault function sees them.
func (req *streamRequest) sent(times []time.Time) []MeterEvent {
	out := make([]MeterEvent, len(req.Events))
	for i, e := range req.Events {
		out[i] = MeterEvent{Identifier: e.Identifier, EventName: e.EventName, Customer: e.Payload["stripe_customer_id"], Stream: true}
		out[i].Value, _ = strconv.ParseInt(e.Payload["value"], 10, 64)
		if !times[i].IsZero() {
			out[i].Timestamp = times[i].Unix()
		}
	}
	return out
}

// SetStreamFault sets the fault for each following authenticated,
// well-formed v2 meter event stream request (n counts them from 1, events
// are what it carries); nil means none. TooManyRequests, ServerError,
// DropBefore, ServerErrorAfter, DropAfter and SlowAfter apply as they do to
// v1; the others act as None.
func (f *Fake) SetStreamFault(fault func(n int, events []MeterEvent) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streamFault = fault
	f.streamCalls = 0
}

// StreamRequest is one v2 meter event stream request as the fake answered it.
type StreamRequest struct {
	// Events is how many events it carried (0 when its body was unreadable).
	Events int
	// Status is the HTTP status of the answer; 0 when the connection was
	// dropped.
	Status int
	// Code is the error code answered ("billing_meter_event_session_expired"),
	// "" for none.
	Code string
}

// StreamRequests returns every v2 meter event stream request, in order of
// their answers, refused ones included.
func (f *Fake) StreamRequests() []StreamRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]StreamRequest(nil), f.streams...)
}

func (f *Fake) logStream(events int, sw *streamWriter) {
	req := StreamRequest{Events: events, Status: sw.status}
	if sw.status >= 400 {
		var body struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(sw.body.Bytes(), &body)
		req.Code = body.Error.Code
	}
	f.mu.Lock()
	f.streams = append(f.streams, req)
	f.mu.Unlock()
}

// streamWriter notes the status and error body a stream request was
// answered with; a dropped connection leaves the status 0.
type streamWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *streamWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *streamWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Hijack lets drop close the connection under the writer.
func (w *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("fakestripe: the connection cannot be hijacked")
	}
	return hj.Hijack()
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
