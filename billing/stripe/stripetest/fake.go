// Package stripetest is a stateful fake of Stripe's meter-event endpoint for
// tests: it keeps every meter event by identifier, replays idempotent
// requests like Stripe does, and can be told to fail in the ways the real
// one does (429, 500, slow replies, dropped connections), before or after
// it has recorded the event.
package stripetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Key is the secret key the fake accepts.
const Key = "sk_test_stripetest"

// Fault is what the fake does with one request instead of answering 200.
type Fault int

const (
	None             Fault = iota
	TooManyRequests        // 429 without recording, as Stripe's rate limiter does
	ServerError            // 500 with Stripe-Should-Retry: true, without recording
	ServerErrorAfter       // record the event, then answer 500: the reply is a lie
	DropBefore             // close the connection without recording
	DropAfter              // record the event, then close the connection
	SlowAfter              // record the event, then answer only after SlowDelay
	Reject                 // 400 invalid_request_error, without recording
)

// MeterEvent is a meter event as the fake received it.
type MeterEvent struct {
	Identifier     string
	EventName      string
	Customer       string
	Value          int64
	Timestamp      int64
	IdempotencyKey string
}

// Fake is the fake Stripe. Its methods are safe for concurrent use.
type Fake struct {
	URL string
	srv *httptest.Server

	mu sync.Mutex
	// fault picks the fault for the n-th request (from 1); nil is None.
	fault     func(n int, ev MeterEvent) Fault
	delay     time.Duration
	slowDelay time.Duration
	noReplay  bool

	calls       int
	events      map[string]MeterEvent
	replies     map[string][]byte // by idempotency key
	inFlight    map[string]int    // by customer
	maxCustomer int
	active      int
	maxActive   int
	arrivals    []time.Time
}

// New starts a fake on 127.0.0.1, closed when the test ends.
func New(t testing.TB) *Fake {
	f := Start()
	t.Cleanup(f.Close)
	return f
}

// Start starts a fake on 127.0.0.1 outside a test (the load tool drives the
// worker against it); Close stops it.
func Start() *Fake {
	f := &Fake{
		events:    make(map[string]MeterEvent),
		replies:   make(map[string][]byte),
		inFlight:  make(map[string]int),
		slowDelay: 2 * time.Second,
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the fake.
func (f *Fake) Close() { f.srv.Close() }

// SetFault sets the fault for each following request; nil means none.
func (f *Fake) SetFault(fault func(n int, ev MeterEvent) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
}

// SetDelay makes every answer take d, so calls overlap and concurrency shows.
func (f *Fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// SetSlowDelay sets how long a SlowAfter answer takes (default 2 s).
func (f *Fake) SetSlowDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slowDelay = d
}

// DisableReplay stops the fake from replaying stored answers to repeated
// idempotency keys (as after Stripe's 24 h window), so that only the
// identifier protects against double counting.
func (f *Fake) DisableReplay() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noReplay = true
}

// Events returns the recorded meter events by identifier.
func (f *Fake) Events() map[string]MeterEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]MeterEvent, len(f.events))
	for k, v := range f.events {
		out[k] = v
	}
	return out
}

// Calls is the number of requests received, failed ones included.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// MaxInFlightPerCustomer is the most requests for one customer that were
// ever open at the same time.
func (f *Fake) MaxInFlightPerCustomer() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxCustomer
}

// MaxInFlight is the most requests ever open at the same time.
func (f *Fake) MaxInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

// Arrivals returns when each request arrived, in order.
func (f *Fake) Arrivals() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.arrivals...)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/billing/meter_events" {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL ("+r.Method+": "+r.URL.Path+")")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+Key {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided")
		return
	}
	ev, problem := parse(r)

	f.mu.Lock()
	f.calls++
	n := f.calls
	f.arrivals = append(f.arrivals, time.Now())
	fault := None
	if f.fault != nil {
		fault = f.fault(n, ev)
	}
	delay, slowDelay := f.delay, f.slowDelay
	f.inFlight[ev.Customer]++
	f.maxCustomer = max(f.maxCustomer, f.inFlight[ev.Customer])
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.mu.Unlock()
	// The call stops counting as open before the client can learn it
	// ended, so a client's next call is never mistaken for an overlap.
	var once sync.Once
	done := func() {
		once.Do(func() {
			f.mu.Lock()
			f.inFlight[ev.Customer]--
			f.active--
			f.mu.Unlock()
		})
	}
	defer done()
	time.Sleep(delay)

	if problem != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", problem)
		return
	}
	switch fault {
	case TooManyRequests:
		writeError(w, http.StatusTooManyRequests, "invalid_request_error", "rate_limit", "Request rate limit exceeded.")
		return
	case ServerError:
		w.Header().Set("Stripe-Should-Retry", "true")
		writeError(w, http.StatusInternalServerError, "api_error", "", "An unknown error occurred")
		return
	case DropBefore:
		done()
		drop(w)
		return
	case Reject:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "No such customer: '"+ev.Customer+"'")
		return
	}

	status, body, header := f.record(ev)
	switch fault {
	case ServerErrorAfter:
		writeError(w, http.StatusInternalServerError, "api_error", "", "An unknown error occurred")
		return
	case DropAfter:
		done()
		drop(w)
		return
	case SlowAfter:
		// The request ends when the client gives up: a server sees the
		// connection close, and the call no longer counts as open.
		select {
		case <-time.After(slowDelay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// record stores ev unless its identifier is known, and returns the answer,
// replaying the stored one for a repeated idempotency key.
func (f *Fake) record(ev MeterEvent) (int, []byte, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if reply, ok := f.replies[ev.IdempotencyKey]; ok && !f.noReplay && ev.IdempotencyKey != "" {
		return http.StatusOK, reply, http.Header{"Idempotent-Replayed": {"true"}}
	}
	if _, ok := f.events[ev.Identifier]; ok {
		body, _ := json.Marshal(errorBody("invalid_request_error", "resource_already_exists",
			"A meter event with identifier "+ev.Identifier+" already exists."))
		return http.StatusBadRequest, body, nil
	}
	f.events[ev.Identifier] = ev
	body, _ := json.Marshal(map[string]any{
		"object":     "billing.meter_event",
		"created":    time.Now().Unix(),
		"event_name": ev.EventName,
		"identifier": ev.Identifier,
		"livemode":   false,
		"payload":    map[string]string{"stripe_customer_id": ev.Customer, "value": strconv.FormatInt(ev.Value, 10)},
		"timestamp":  ev.Timestamp,
	})
	f.replies[ev.IdempotencyKey] = body
	return http.StatusOK, body, nil
}

// parse reads a meter event request and checks it as Stripe would.
func parse(r *http.Request) (MeterEvent, string) {
	if err := r.ParseForm(); err != nil {
		return MeterEvent{}, "unreadable form body"
	}
	ev := MeterEvent{
		Identifier:     r.PostForm.Get("identifier"),
		EventName:      r.PostForm.Get("event_name"),
		Customer:       r.PostForm.Get("payload[stripe_customer_id]"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	var err error
	if ev.Value, err = strconv.ParseInt(r.PostForm.Get("payload[value]"), 10, 64); err != nil {
		return ev, "payload[value] must be an integer"
	}
	if ev.Timestamp, err = strconv.ParseInt(r.PostForm.Get("timestamp"), 10, 64); err != nil {
		return ev, "timestamp must be an integer"
	}
	now := time.Now()
	switch {
	case ev.EventName == "":
		return ev, "Missing required param: event_name."
	case ev.Customer == "":
		return ev, "payload[stripe_customer_id] is required"
	case ev.Identifier == "" || len(ev.Identifier) > 100:
		return ev, "identifier must be 1 to 100 characters"
	case ev.Timestamp < now.AddDate(0, 0, -35).Unix() || ev.Timestamp > now.Add(5*time.Minute).Unix():
		return ev, fmt.Sprintf("timestamp %d is outside the accepted window", ev.Timestamp)
	}
	return ev, ""
}

func errorBody(typ, code, msg string) map[string]any {
	e := map[string]string{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	return map[string]any{"error": e}
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody(typ, code, msg))
}

// drop closes the connection without an answer, as a crashed proxy would.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot be hijacked; a 502 is the nearest thing.
		writeError(w, http.StatusBadGateway, "api_error", "", "connection dropped")
		return
	}
	if conn, _, err := hj.Hijack(); err == nil {
		conn.Close()
	}
}
