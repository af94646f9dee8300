// Package fakestripe is a stateful fake of the parts of Stripe that egressd
// uses, served on a local port: v1 meter events, meters and their event summaries, cancel
// adjustments, v2 meter event sessions and streams, and the v2 events and
// signed thin-event deliveries by which Stripe reports, later, the meter
// events it accepted and then rejected. stripe-mock is stateless and serves
// no v2, so this fake applies the rules Stripe documents (each is cited where
// it is enforced) and keeps what it was sent, so that a test can check what
// Stripe would bill. It can also be told to fail in the ways the real one and
// the network to it do (429, 500, slow replies, dropped connections), before
// or after it has recorded the event.
//
// One base URL serves everything: Stripe's API host and its meter-events host
// (api.stripe.com and meter-events.stripe.com) both point here.
//
// Until AddMeter is first called every event name has a meter (made on first
// use), and until AddCustomer is first called every customer exists, so a test
// that cares about neither needs no setup.
package fakestripe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Key is the secret key the fake accepts.
const Key = "sk_test_stripetest"

// The endpoints the fake serves, as Requests counts them.
const (
	MeterEventsEndpoint    = "POST /v1/billing/meter_events"
	MetersEndpoint         = "GET /v1/billing/meters"
	MeterEndpoint          = "GET /v1/billing/meters/{id}"
	EventSummariesEndpoint = "GET /v1/billing/meters/{id}/event_summaries"
	AdjustmentsEndpoint    = "POST /v1/billing/meter_event_adjustments"
	SessionEndpoint        = "POST /v2/billing/meter_event_session"
	StreamEndpoint         = "POST /v2/billing/meter_event_stream"
	CoreEventEndpoint      = "GET /v2/core/events/{id}"
)

// Fault is what the fake does with one v1 meter event request (SetFault) or
// v2 stream request (SetStreamFault) instead of answering as Stripe would.
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
	Timestamp      int64 // Unix seconds
	IdempotencyKey string
	// Received is when the fake accepted the event, by its clock.
	Received time.Time
	// Stream is true for an event sent on the v2 meter event stream.
	Stream bool
	// Error is the code of the asynchronous error that rejected the event
	// after it was accepted ("" if none): Stripe does not bill it.
	Error string
	// Cancelled is true once a cancel adjustment removed the event.
	Cancelled bool
}

// Fake is the fake Stripe. Its methods are safe for concurrent use.
type Fake struct {
	URL string
	srv *http.Server
	// webhook delivers thin events to the destination set by SetWebhook.
	webhook *http.Client

	mu sync.Mutex
	// fault picks the fault for the n-th v1 meter event request (from 1);
	// nil is None.
	fault func(n int, ev MeterEvent) Fault
	// streamFault picks the fault for the n-th v2 stream request (from 1).
	streamFault     func(n int, events []MeterEvent) Fault
	delay           time.Duration
	slowDelay       time.Duration
	noReplay        bool
	now             func() time.Time
	dedupWindow     time.Duration
	sessionLifetime time.Duration
	summaryLag      time.Duration

	meters            []*meter // in creation order
	meterByName       map[string]*meter
	explicitMeters    bool
	customers         map[string]bool
	explicitCustomers bool

	accepted     []*MeterEvent          // every accepted event, in order
	byIdentifier map[string]*MeterEvent // the latest accepted per identifier
	replies      map[string]reply       // by idempotency key
	sessions     map[string]time.Time   // session token -> expiry

	pending     []asyncError // found, not yet reported
	coreEvents  map[string]*coreEvent
	webhookURL  string
	secret      string
	reportDelay time.Duration
	reportTimer *time.Timer
	closed      bool
	deliveries  []Delivery

	calls         int // v1 meter event requests
	streamCalls   int // authenticated, well-formed v2 stream requests, for streamFault
	streams       []StreamRequest
	requests      map[string]int
	busy          map[string]bool // meter and customer with a call in flight
	inFlight      map[string]int  // open v1 calls by customer
	maxByCustomer map[string]int
	maxCustomer   int
	active        int
	maxActive     int
	arrivals      []time.Time
	rateLimited   []RateLimited
}

// Start starts a fake on a free port of 127.0.0.1; Close stops it.
func Start() (*Fake, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakestripe: listen on 127.0.0.1: %w", err)
	}
	f := &Fake{
		webhook:         &http.Client{Timeout: 10 * time.Second},
		slowDelay:       2 * time.Second,
		now:             time.Now,
		dedupWindow:     24 * time.Hour,
		sessionLifetime: 15 * time.Minute,
		meterByName:     make(map[string]*meter),
		customers:       make(map[string]bool),
		byIdentifier:    make(map[string]*MeterEvent),
		replies:         make(map[string]reply),
		sessions:        make(map[string]time.Time),
		coreEvents:      make(map[string]*coreEvent),
		requests:        make(map[string]int),
		busy:            make(map[string]bool),
		inFlight:        make(map[string]int),
		maxByCustomer:   make(map[string]int),
	}
	mux := http.NewServeMux()
	f.handle(mux, MeterEventsEndpoint, f.createMeterEvent)
	f.handle(mux, MetersEndpoint, f.listMeters)
	f.handle(mux, MeterEndpoint, f.getMeter)
	f.handle(mux, EventSummariesEndpoint, f.listEventSummaries)
	f.handle(mux, AdjustmentsEndpoint, f.createAdjustment)
	f.handle(mux, SessionEndpoint, f.createSession)
	f.handle(mux, StreamEndpoint, f.stream)
	f.handle(mux, CoreEventEndpoint, f.getCoreEvent)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		(&apiError{status: http.StatusNotFound, typ: "invalid_request_error",
			msg: "Unrecognized request URL (" + r.Method + ": " + r.URL.Path + ")"}).write(w)
	})
	f.srv = &http.Server{Handler: mux}
	f.URL = "http://" + ln.Addr().String()
	go f.srv.Serve(ln) // returns http.ErrServerClosed when Close shuts it down
	return f, nil
}

// handle serves pattern with h, counting its requests.
func (f *Fake) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests[pattern]++
		f.mu.Unlock()
		h(w, r)
	})
}

// Close stops the fake and any automatic error report still to come.
func (f *Fake) Close() {
	f.mu.Lock()
	f.closed = true
	if f.reportTimer != nil {
		f.reportTimer.Stop()
	}
	f.mu.Unlock()
	// Shutdown, as httptest's Close does, waits for the requests in flight
	// (a SlowAfter reply, a delayed one), so that no handler records an event
	// after Close returns; hijacked (dropped) connections are not waited for.
	f.srv.Shutdown(context.Background())
	// Also as httptest does: the default client's idle connections to this
	// server are of no further use.
	if t, ok := http.DefaultTransport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// SetFault sets the fault for each following v1 meter event request; nil
// means none.
func (f *Fake) SetFault(fault func(n int, ev MeterEvent) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
}

// SetDelay makes every meter event request (v1, and v2 stream) stay in flight
// for d before it is answered, so calls overlap and concurrency shows.
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

// SetNow sets the fake's clock (nil is time.Now): the timestamp window,
// identifier and idempotency windows, the 24 h cancel limit, session expiry
// and the times in its answers all follow it. now must not call the fake.
func (f *Fake) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	f.now = now
}

// SetDedupWindow sets how long an identifier keeps a second meter event with
// it from counting. The default, 24 h, is the least Stripe promises (API
// reference, Create a billing meter event, identifier: unique over a rolling
// period of no less than a day), so a test sees what a later re-send risks.
func (f *Fake) SetDedupWindow(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dedupWindow = d
}

// SetSessionLifetime sets how long a v2 meter event session token is valid.
// The default is the 15 minutes the API reference gives for a session's
// authentication token (v2, Create a meter event session).
func (f *Fake) SetSessionLifetime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessionLifetime = d
}

// SetSummaryLag keeps events received less than d ago (by the fake's clock)
// out of event summaries. Stripe aggregates meter events asynchronously, so
// its summaries are only eventually consistent (API reference, Meter Event
// Summary); a lag lets a test show that reconciliation waits. Default 0.
func (f *Fake) SetSummaryLag(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.summaryLag = d
}

// apiError is an error answer in Stripe's shape, the same for v1 and v2:
// {"error": {"type", "code", "message", "param"}}.
type apiError struct {
	status int
	typ    string
	code   string
	msg    string
	param  string
	header http.Header
}

func invalid(code, param, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, param: param, msg: msg}
}

func (e *apiError) write(w http.ResponseWriter) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	body := map[string]string{"type": e.typ, "message": e.msg}
	if e.code != "" {
		body["code"] = e.code
	}
	if e.param != "" {
		body["param"] = e.param
	}
	writeJSON(w, e.status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// authorized answers 401 unless r carries the secret key.
func authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "Bearer "+Key {
		return true
	}
	(&apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", msg: "Invalid API Key provided"}).write(w)
	return false
}

// clock is the fake's time; f.mu must be held.
func (f *Fake) clock() time.Time { return f.now() }

// newID is a Stripe-like object id: prefix and 24 random hex digits.
func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// v2Time is how the v2 API writes times: RFC 3339 in UTC, milliseconds.
func v2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
