package fakestripe

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxValueDigits is the most digits a meter event value may have. Stripe
// refuses longer values with meter_event_value_too_many_digits (API changelog
// 2026-04-22.dahlia, validation of meter event values of more than 15
// digits), because it sums them as doubles.
const maxValueDigits = 15

// reply is a stored answer to a request with an idempotency key.
type reply struct {
	digest string // of the request's parameters
	body   []byte
	at     time.Time
}

// RateLimited is one 429 the fake answered.
type RateLimited struct {
	EventName string
	Customer  string
	At        time.Time
	// Injected is true for a TooManyRequests fault, false for a second call
	// for a customer and meter while one was in flight.
	Injected bool
}

// createMeterEvent serves POST /v1/billing/meter_events.
func (f *Fake) createMeterEvent(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		invalid("", "", "unreadable form body").write(w)
		return
	}
	ev := formEvent(r)

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
	f.maxByCustomer[ev.Customer] = max(f.maxByCustomer[ev.Customer], f.inFlight[ev.Customer])
	f.maxCustomer = max(f.maxCustomer, f.inFlight[ev.Customer])
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	// Stripe allows one concurrent meter event call per customer per meter
	// (Record usage for billing with the API, Rate limits); the call that
	// holds the slot keeps it until it is answered.
	slot := ev.EventName + "\x00" + ev.Customer
	concurrent := f.busy[slot]
	if concurrent {
		f.rateLimited = append(f.rateLimited, RateLimited{EventName: ev.EventName, Customer: ev.Customer, At: f.clock()})
	} else {
		f.busy[slot] = true
	}
	f.mu.Unlock()
	// The call stops counting as open before the client can learn it
	// ended, so a client's next call is never mistaken for an overlap.
	var once sync.Once
	done := func() {
		once.Do(func() {
			f.mu.Lock()
			f.inFlight[ev.Customer]--
			f.active--
			if !concurrent {
				delete(f.busy, slot)
			}
			f.mu.Unlock()
		})
	}
	defer done()
	if concurrent {
		rateLimit().write(w)
		return
	}
	time.Sleep(delay)

	if err := f.validate(&ev, r.PostForm); err != nil {
		err.write(w)
		return
	}
	switch fault {
	case TooManyRequests:
		f.mu.Lock()
		f.rateLimited = append(f.rateLimited, RateLimited{EventName: ev.EventName, Customer: ev.Customer, At: f.clock(), Injected: true})
		f.mu.Unlock()
		rateLimit().write(w)
		return
	case ServerError:
		(&apiError{status: http.StatusInternalServerError, typ: "api_error", msg: "An unknown error occurred",
			header: http.Header{"Stripe-Should-Retry": {"true"}}}).write(w)
		return
	case DropBefore:
		done()
		drop(w)
		return
	case Reject:
		invalid("parameter_invalid", "", "No such customer: '"+ev.Customer+"'").write(w)
		return
	}

	body, replayed, err := f.record(ev, digest(r))
	if err != nil {
		err.write(w)
		return
	}
	switch fault {
	case ServerErrorAfter:
		(&apiError{status: http.StatusInternalServerError, typ: "api_error", msg: "An unknown error occurred"}).write(w)
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
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// rateLimit is Stripe's 429: code rate_limit (stripe-go v81's
// ErrorCodeRateLimit), which stripe-go does not retry by itself.
func rateLimit() *apiError {
	return &apiError{status: http.StatusTooManyRequests, typ: "invalid_request_error", code: "rate_limit",
		msg: "Too many concurrent requests for this customer and meter. Retry after the one in flight is answered."}
}

// formEvent reads a meter event request as sent, before any check.
func formEvent(r *http.Request) MeterEvent {
	ev := MeterEvent{
		Identifier:     r.PostForm.Get("identifier"),
		EventName:      r.PostForm.Get("event_name"),
		Customer:       r.PostForm.Get("payload[stripe_customer_id]"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	ev.Value, _ = strconv.ParseInt(r.PostForm.Get("payload[value]"), 10, 64)
	ev.Timestamp, _ = strconv.ParseInt(r.PostForm.Get("timestamp"), 10, 64)
	return ev
}

// validate applies the checks Stripe makes before answering a v1 meter
// event, filling in what Stripe fills in: a missing identifier is generated
// and a missing timestamp is now (API reference, Create a billing meter
// event). The customer is checked only after answering (see accept). The
// codes of the 400s are those Stripe's error reports give the same faults:
// Stripe documents these rules, but not the codes of its synchronous
// answers, meter_event_value_too_many_digits excepted.
func (f *Fake) validate(ev *MeterEvent, form map[string][]string) *apiError {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock()
	switch {
	case ev.EventName == "":
		return invalid("parameter_missing", "event_name", "Missing required param: event_name.")
	case len(ev.EventName) > 100 || len(ev.Identifier) > 100:
		return invalid("", "", "event_name and identifier are at most 100 characters")
	case f.meterFor(ev.EventName) == nil:
		// v1 refuses an event name with no active meter at once (clients
		// in the wild match this 400 by its message); the v2 stream
		// reports it later, as no_meter.
		return invalid("", "event_name", "No active meter found for event_name '"+ev.EventName+"'.")
	}
	if code, msg := checkValue(get("payload[value]")); code != "" {
		return invalid(code, "payload[value]", msg)
	}
	if ts := get("timestamp"); ts == "" {
		ev.Timestamp = now.Unix()
	} else if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return invalid("parameter_invalid_integer", "timestamp", "Invalid integer: "+ts)
	}
	if code, msg := checkTimestamp(time.Unix(ev.Timestamp, 0), now); code != "" {
		return invalid(code, "timestamp", msg)
	}
	if ev.Identifier == "" {
		ev.Identifier = newID("fake_")
	}
	return nil
}

// checkValue checks a meter event value as Stripe does: a whole number
// (Record usage for billing with the API, Usage values; negative values are
// allowed, as corrections), of at most 15 digits. It answers the error code
// Stripe uses for the failure in its error reports, "" if the value is fine.
func checkValue(v string) (code, msg string) {
	digits := strings.TrimPrefix(v, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "meter_event_invalid_value", fmt.Sprintf("Meter event value %q is not a whole number.", v)
	}
	if significant := strings.TrimLeft(digits, "0"); len(significant) > maxValueDigits {
		return "meter_event_value_too_many_digits", fmt.Sprintf("Meter event value %s has more than %d digits.", v, maxValueDigits)
	}
	return "", ""
}

// checkTimestamp checks an event time as Stripe does: within the past 35
// calendar days and at most 5 minutes ahead of Stripe's clock (API
// reference, Create a billing meter event, timestamp).
func checkTimestamp(ts, now time.Time) (code, msg string) {
	switch {
	case ts.Before(now.AddDate(0, 0, -35)):
		return "timestamp_too_far_in_past", fmt.Sprintf("Timestamp %d is more than 35 days in the past.", ts.Unix())
	case ts.After(now.Add(5 * time.Minute)):
		return "timestamp_in_future", fmt.Sprintf("Timestamp %d is more than 5 minutes in the future.", ts.Unix())
	}
	return "", ""
}

// digest identifies a request's parameters, to tell a replay from a
// different request under the same idempotency key.
func digest(r *http.Request) string {
	sum := sha256.Sum256([]byte(r.PostForm.Encode()))
	return string(sum[:])
}

// record stores ev unless its identifier is taken, and returns the answer.
//
// A repeated idempotency key gets the stored answer again for 24 hours
// (Stripe's idempotent requests), or an idempotency_error if the parameters
// differ. A repeated identifier within the dedup window is not counted again
// and is refused with a 400 invalid_request_error saying "An event already
// exists with identifier <id>.", with Stripe-Should-Retry: false and no error
// code. That is what Stripe answers in test mode as reported by integrators
// who observed it (langfuse/langfuse pull request 16292; other open-source
// clients match the same message): it is not a success, and not the generic
// code resource_already_exists (stripe-go v81 defines that code, but nothing
// in v81 ties it to meter events). Stripe's reference documents only the
// uniqueness itself. An identifier stays taken even if the event is later
// rejected asynchronously (unknown customer), so re-sending it after the
// customer is fixed is refused as a duplicate.
func (f *Fake) record(ev MeterEvent, digest string) (body []byte, replayed bool, err *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock()
	if rep, ok := f.replies[ev.IdempotencyKey]; ok && !f.noReplay && ev.IdempotencyKey != "" && now.Sub(rep.at) < 24*time.Hour {
		if rep.digest != digest {
			return nil, false, &apiError{status: http.StatusBadRequest, typ: "idempotency_error",
				msg: "Idempotency key " + ev.IdempotencyKey + " was first used with other parameters."}
		}
		return rep.body, true, nil
	}
	if prev, ok := f.byIdentifier[ev.Identifier]; ok && now.Sub(prev.Received) < f.dedupWindow {
		e := invalid("", "", "An event already exists with identifier "+ev.Identifier+".")
		e.header = http.Header{"Stripe-Should-Retry": {"false"}}
		return nil, false, e
	}
	ev.Received = now
	f.accept(&ev, "", "")
	body, _ = json.Marshal(map[string]any{
		"object":     "billing.meter_event",
		"created":    now.Unix(),
		"event_name": ev.EventName,
		"identifier": ev.Identifier,
		"livemode":   false,
		"payload":    map[string]string{"stripe_customer_id": ev.Customer, "value": strconv.FormatInt(ev.Value, 10)},
		"timestamp":  ev.Timestamp,
	})
	if ev.IdempotencyKey != "" {
		f.replies[ev.IdempotencyKey] = reply{digest: digest, body: body, at: now}
	}
	return body, false, nil
}

// accept keeps ev as received. code and msg are the asynchronous error the
// caller found in it, if any; otherwise its customer is checked, as Stripe
// does only after answering. An event with an error is kept, not billed, and
// reported by the next ReportErrors. f.mu must be held.
func (f *Fake) accept(ev *MeterEvent, code, msg string) {
	f.accepted = append(f.accepted, ev)
	f.byIdentifier[ev.Identifier] = ev
	if code == "" {
		code, msg = f.checkCustomer(ev.Customer)
	}
	if code != "" {
		ev.Error = code
		f.reportLater(ev, code, msg)
	}
}

// drop closes the connection without an answer, as a crashed proxy would.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot be hijacked; a 502 is the nearest thing.
		(&apiError{status: http.StatusBadGateway, typ: "api_error", msg: "connection dropped"}).write(w)
		return
	}
	if conn, _, err := hj.Hijack(); err == nil {
		conn.Close()
	}
}
