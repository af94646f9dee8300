package stripe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing"
)

// reportV1 sends each charge as its own v1 meter event, one after another
// (the worker sends one at a time: Limits().MaxCharges is 1).
func (r *Reporter) reportV1(ctx context.Context, charges []billing.Charge) []error {
	errs := make([]error, len(charges))
	for i, c := range charges {
		errs[i] = r.sendV1(ctx, c)
	}
	return errs
}

// sendV1 creates the meter event of one charge.
func (r *Reporter) sendV1(ctx context.Context, c billing.Charge) error {
	customer, err := checkCharge(c)
	if err != nil {
		return err
	}
	if err := r.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the Stripe rate limit: %w", err)
	}
	params := r.params(customer, c.Batch)
	params.Context = ctx
	if _, err := r.events.New(params); err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && alreadyCounted(se) {
			// Stripe already has a meter event with this identifier: an
			// earlier attempt got through and only its reply was lost.
			r.log.Debug("stripe meter event already counted", "batch", c.Batch.ID, "resend", c.Batch.Resend, "customer", customer)
			return nil
		}
		r.log.Debug("stripe meter event failed", "batch", c.Batch.ID, "resend", c.Batch.Resend, "customer", customer, "err", err)
		return classify(err)
	}
	r.log.Debug("stripe meter event created", "batch", c.Batch.ID, "resend", c.Batch.Resend, "customer", customer,
		"bytes", c.Batch.Bytes, "events", c.Batch.Events)
	return nil
}

// params builds the meter event of batch b. Everything in it is derived from
// what the ledger stores of the batch, so a retry after a crash sends the
// same request.
func (r *Reporter) params(customer string, b billing.Batch) *stripego.BillingMeterEventParams {
	id := BatchIdentifier(b)
	value := strconv.FormatInt(b.Bytes, 10)
	ts := b.Timestamp.Unix()
	p := &stripego.BillingMeterEventParams{
		EventName:  stripego.String(r.eventName),
		Identifier: stripego.String(id),
		Payload:    map[string]string{"stripe_customer_id": customer, "value": value},
		Timestamp:  stripego.Int64(ts),
	}
	p.SetIdempotencyKey(IdempotencyKey(id, r.eventName, customer, value, ts))
	return p
}

// alreadyCounted reports Stripe's answer to a meter event whose identifier
// it already holds. Stripe answers that with a 400 invalid_request_error
// and no code, only the message "An event already exists with identifier
// <id>." (as observed in test mode by integrators; the reference documents
// just the uniqueness), so the message is what tells it apart from a real
// rejection. The generic resource_already_exists code is taken too.
func alreadyCounted(se *stripego.Error) bool {
	if se.Code == stripego.ErrorCodeResourceAlreadyExists {
		return true
	}
	return se.HTTPStatusCode == http.StatusBadRequest && strings.HasPrefix(se.Msg, "An event already exists with identifier ")
}

// classify turns a stripe-go error into a billing.ReportError: 409, 429, 5xx
// and network failures can be retried, other 4xx are final, and
// Stripe-Should-Retry overrides both when Stripe sends it. v1 and v2 errors
// have the same shape ({"error": {"type", "code", "message"}}), which
// stripe-go reads into a *stripe.Error for both.
func classify(err error) *billing.ReportError {
	var se *stripego.Error
	if !errors.As(err, &se) {
		// Network failures, timeouts and unreadable replies (a proxy's HTML
		// 502) carry no Stripe error: the call may not have arrived at all.
		var netErr net.Error
		reason := "calling Stripe: " + err.Error()
		if errors.As(err, &netErr) && netErr.Timeout() {
			reason = "calling Stripe: timed out"
		}
		return &billing.ReportError{Retryable: true, Reason: reason, Err: err}
	}
	var header http.Header
	if se.LastResponse != nil {
		header = se.LastResponse.Header
	}
	status := se.HTTPStatusCode
	retry := status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500
	switch header.Get("Stripe-Should-Retry") {
	case "true":
		retry = true
	case "false":
		retry = false
	}
	reason := fmt.Sprintf("Stripe answered %d", status)
	if se.Type != "" {
		reason += " " + string(se.Type)
	}
	if se.Code != "" {
		reason += " (" + string(se.Code) + ")"
	}
	if se.Msg != "" {
		reason += ": " + se.Msg
	}
	return &billing.ReportError{Retryable: retry, RetryAfter: retryAfter(header), Reason: reason, Err: err}
}

// retryAfter reads a Retry-After header given in seconds (what rate limiters
// in front of Stripe send); anything else is left to the worker's backoff.
func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
