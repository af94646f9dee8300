package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	stripego "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing"
)

// codeSessionExpired is the code of the 401 Stripe answers a stream request
// whose session token has expired (API reference v2, Create meter events on
// the stream, errors).
const codeSessionExpired = "billing_meter_event_session_expired"

// streamEvent is one event of a meter event stream request.
type streamEvent struct {
	EventName  string        `json:"event_name"`
	Identifier string        `json:"identifier"`
	Payload    streamPayload `json:"payload"`
	// Timestamp is RFC 3339, as v2 writes times.
	Timestamp string `json:"timestamp"`
}

type streamPayload struct {
	Customer string `json:"stripe_customer_id"`
	Value    string `json:"value"`
}

// reportV2 sends the charges on the meter event stream, up to
// MaxStreamEvents a request. Stripe answers a request as a whole and
// validates its events later (an unknown customer comes back through the
// webhook), so each request's outcome is every one of its charges' outcome;
// a charge refused before sending fails alone.
func (r *Reporter) reportV2(ctx context.Context, charges []billing.Charge) []error {
	errs := make([]error, len(charges))
	var (
		events []streamEvent
		index  []int // of each event's charge
	)
	for i, c := range charges {
		customer, err := checkCharge(c)
		if err != nil {
			errs[i] = err
			continue
		}
		events = append(events, streamEvent{
			EventName:  r.eventName,
			Identifier: BatchIdentifier(c.Batch),
			Payload:    streamPayload{Customer: customer, Value: strconv.FormatInt(c.Batch.Bytes, 10)},
			Timestamp:  c.Batch.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		})
		index = append(index, i)
	}
	for start := 0; start < len(events); start += MaxStreamEvents {
		end := min(start+MaxStreamEvents, len(events))
		for k, err := range r.sendStream(ctx, events[start:end]) {
			errs[index[start+k]] = err
		}
	}
	return errs
}

// sendStream sends one stream request and returns one error per event. A
// request Stripe refuses because its session expired (or because it no
// longer knows the token) is sent again, unchanged, under a new session:
// Stripe recorded none of its events, and had it recorded some, their
// identifiers would keep them from counting twice.
func (r *Reporter) sendStream(ctx context.Context, events []streamEvent) []error {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return same(len(events), &billing.ReportError{Reason: "encoding the stream request: " + err.Error(), Err: err})
	}
	for attempt := 1; ; attempt++ {
		s, err := r.sessions.get(ctx)
		if err != nil {
			r.log.Debug("stripe meter event session failed", "err", err)
			re := sessionError(err)
			return same(len(events), re)
		}
		if err := r.limiter.Wait(ctx); err != nil {
			return same(len(events), fmt.Errorf("waiting for the Stripe rate limit: %w", err))
		}
		_, err = r.streamHost.call(ctx, http.MethodPost, "/v2/billing/meter_event_stream", s.token, body)
		if err == nil {
			r.log.Debug("stripe meter event stream request accepted", "events", len(events), "first", events[0].Identifier)
			return make([]error, len(events))
		}
		var se *stripego.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusUnauthorized {
			r.sessions.expired(s)
			if attempt < 2 {
				r.log.Debug("stripe meter event session refused; sending again under a new one", "code", se.Code, "events", len(events))
				continue
			}
			// The session is at fault, not the events: try them later.
			re := classify(err)
			re.Retryable = true
			re.Reason = "a new meter event session was refused too: " + re.Reason
			return same(len(events), re)
		}
		r.log.Debug("stripe meter event stream request failed", "events", len(events), "first", events[0].Identifier, "err", err)
		return streamErrors(err, len(events))
	}
}

// sessionError is the error of every charge when no session could be made.
// A refused secret key is final, as on v1; the rest is retryable.
func sessionError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("waiting for a meter event session: %w", err)
	}
	re := classify(err)
	re.Reason = "creating a meter event session: " + re.Reason
	return re
}

// eventParam finds which event a 400's param names ("events[3]",
// "events[3].timestamp").
var eventParam = regexp.MustCompile(`^events\[(\d+)\]`)

// streamErrors maps a failed stream request to its n events. Stripe refused
// the request as a whole: the same error applies to every event, unless it
// is a 400 whose param names one event, which is then refused for good while
// the others, refused only for being in its company, are retryable.
func streamErrors(err error, n int) []error {
	re := classify(err)
	var se *stripego.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != http.StatusBadRequest || re.Retryable {
		return same(n, re)
	}
	m := eventParam.FindStringSubmatch(se.Param)
	if m == nil {
		return same(n, re)
	}
	bad, convErr := strconv.Atoi(m[1])
	if convErr != nil || bad >= n {
		return same(n, re)
	}
	errs := same(n, &billing.ReportError{Retryable: true,
		Reason: fmt.Sprintf("not counted: Stripe refused the stream request for another event in it (%s): %s", se.Param, re.Reason), Err: err})
	errs[bad] = re
	return errs
}

// same is n copies of err.
func same(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
