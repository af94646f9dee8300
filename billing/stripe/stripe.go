// Package stripe reports egress events to Stripe Billing Meters: one meter
// event per egress event, with an identifier derived from the event's cause
// so Stripe counts it once however often it is sent.
package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/billing/meter"
	"github.com/stripe/stripe-go/v81/billing/meterevent"
	"golang.org/x/time/rate"

	"github.com/egressd/egressd/billing"
)

// Defaults for Config.
const (
	// DefaultEventName is the meter's event_name.
	DefaultEventName = "egress"
	// DefaultRate is meter-event calls per second: under the 25 req/s a
	// Stripe sandbox allows, leaving room for other API calls.
	DefaultRate = 20
	// DefaultTimeout bounds one HTTP call.
	DefaultTimeout = 30 * time.Second
)

// MaxValue is the largest meter event value Report sends: the largest
// integer of 15 digits (about 888 TiB of egress in one event). Stripe
// rejects values of more than 15 significant digits with a 400 (error code
// meter_event_value_too_many_digits, API changelog 2026-04-22.dahlia,
// "Adds validation for billing meter event values with more than 15
// digits"), because it aggregates them as doubles and would lose precision;
// earlier API versions took such values and summed them inexactly.
const MaxValue = 999_999_999_999_999

// Config configures a Reporter. Key is required.
type Config struct {
	// Key is the Stripe secret key (sk_live_..., sk_test_..., rk_...).
	Key string
	// URL is the API base URL; empty is https://api.stripe.com. Point it at
	// stripe-mock or a proxy.
	URL string
	// EventName is the meter's event_name; empty is DefaultEventName.
	EventName string
	// Rate is the most meter-event calls per second across all customers;
	// zero is DefaultRate.
	Rate float64
	// Timeout bounds one call; zero is DefaultTimeout. A call that times
	// out is retried: the identifier keeps it from counting twice.
	Timeout time.Duration
	// HTTPClient makes the calls; nil is a client with Timeout.
	HTTPClient *http.Client
	// Logger receives debug lines for each call; nil is slog.Default().
	Logger *slog.Logger
}

// Reporter sends meter events. It is safe for concurrent use; the caller
// keeps calls for one customer serial (Stripe allows one at a time).
type Reporter struct {
	client    meterevent.Client
	meters    meter.Client
	eventName string
	limiter   *rate.Limiter
	log       *slog.Logger
}

var _ billing.Reporter = (*Reporter)(nil)

// New builds a Reporter from cfg.
func New(cfg Config) (*Reporter, error) {
	if cfg.Key == "" {
		return nil, errors.New("stripe: no secret key")
	}
	if cfg.EventName == "" {
		cfg.EventName = DefaultEventName
	}
	if len(cfg.EventName) > 100 {
		return nil, fmt.Errorf("stripe: meter event name %q is longer than 100 characters", cfg.EventName)
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("stripe: rate %v must be positive", cfg.Rate)
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HTTPClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		// One connection per concurrent customer instead of the default 2
		// idle ones, so a busy worker does not reconnect for every call.
		transport.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Timeout: cfg.Timeout, Transport: transport}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	backendCfg := &stripego.BackendConfig{
		HTTPClient: cfg.HTTPClient,
		// The worker retries, with backoff, a bounded number of times and
		// counts every call; stripe-go's own retries would hide calls and
		// skip plain 429s.
		MaxNetworkRetries: stripego.Int64(0),
		// The worker logs outcomes itself, with the event they belong to.
		LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
	}
	if cfg.URL != "" {
		backendCfg.URL = stripego.String(cfg.URL)
	}
	backends := stripego.NewBackendsWithConfig(backendCfg)
	// Bursts of a tenth of a second's worth of calls smooth out the
	// per-customer serialisation without ever exceeding Rate on average.
	burst := max(1, int(cfg.Rate/10))
	return &Reporter{
		client:    meterevent.Client{B: backends.API, Key: cfg.Key},
		meters:    meter.Client{B: backends.API, Key: cfg.Key},
		eventName: cfg.EventName,
		limiter:   rate.NewLimiter(rate.Limit(cfg.Rate), burst),
		log:       cfg.Logger,
	}, nil
}

// Report creates the meter event for ev, billed to account ("stripe:cus_...").
func (r *Reporter) Report(ctx context.Context, account string, ev billing.Event) error {
	customer, ok := strings.CutPrefix(account, "stripe:")
	if !ok || !strings.HasPrefix(customer, "cus_") {
		return &billing.ReportError{Reason: fmt.Sprintf("account %q is not a Stripe customer (stripe:cus_...)", account)}
	}
	if err := checkValue(ev.Bytes); err != nil {
		return err
	}
	if err := r.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the Stripe rate limit: %w", err)
	}
	params := r.params(customer, ev)
	params.Context = ctx
	_, err := r.client.New(params)
	if err != nil {
		r.log.Debug("stripe meter event failed", "cause", ev.Cause, "customer", customer, "err", err)
		return classify(err)
	}
	r.log.Debug("stripe meter event created", "cause", ev.Cause, "customer", customer, "bytes", ev.Bytes)
	return nil
}

// checkValue refuses, without calling Stripe, a value Stripe would reject
// or that would lower the customer's usage (Stripe takes negative values as
// corrections). The refusal is final: the event becomes unbillable with the
// reason, for an operator to look at.
func checkValue(bytes int64) error {
	switch {
	case bytes <= 0:
		return &billing.ReportError{Reason: fmt.Sprintf("meter event value %d: egress must be a positive number of bytes", bytes)}
	case bytes > MaxValue:
		return &billing.ReportError{Reason: fmt.Sprintf("meter event value %d has %d digits: Stripe takes at most 15 (up to %d)",
			bytes, len(strconv.FormatInt(bytes, 10)), MaxValue)}
	}
	return nil
}

// params builds the meter event for ev. Everything in it is derived from the
// event alone, so a retry after a crash sends the same request.
func (r *Reporter) params(customer string, ev billing.Event) *stripego.BillingMeterEventParams {
	id := EventIdentifier(ev)
	value := strconv.FormatInt(ev.Bytes, 10)
	ts := ev.ServedAt.Unix()
	p := &stripego.BillingMeterEventParams{
		EventName:  stripego.String(r.eventName),
		Identifier: stripego.String(id),
		Payload:    map[string]string{"stripe_customer_id": customer, "value": value},
		Timestamp:  stripego.Int64(ts),
	}
	p.SetIdempotencyKey(IdempotencyKey(id, r.eventName, customer, value, ts))
	return p
}

// Identifier is the meter event identifier of an event: its cause (an
// invocation CID, about 60 characters) when that fits Stripe's 100-character
// limit, otherwise a hash of it. Stripe rejects or ignores a second event
// with the same identifier, which is what makes re-sending safe.
func Identifier(cause string) string {
	if len(cause) <= 100 {
		return cause
	}
	sum := sha256.Sum256([]byte(cause))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// resendSuffix separates a cause from its resend in an identifier. Causes
// are CIDs, which never hold a '-'.
const resendSuffix = "-r"

// EventIdentifier is the meter event identifier ev is sent under:
// Identifier(cause) the first time, and Identifier("<cause>-r<n>") once a
// redrive sends it again for the nth time after Stripe rejected it. Stripe
// keeps an identifier taken for 24 hours even when it rejected the event,
// and would refuse the same one as a duplicate (which Report takes for
// "already counted"); deriving the new one from what the ledger stores
// means a redrive run twice sends under the same new identifier, and
// Stripe counts it once.
func EventIdentifier(ev billing.Event) string {
	if ev.Resend <= 0 {
		return Identifier(ev.Cause)
	}
	return Identifier(ev.Cause + resendSuffix + strconv.Itoa(ev.Resend))
}

// causeOf reads the cause and resend an identifier was made from by
// EventIdentifier. A hashed identifier cannot be traced back: ok is false.
func causeOf(identifier string) (cause string, resend int, ok bool) {
	if identifier == "" || strings.HasPrefix(identifier, "sha256:") {
		return "", 0, false
	}
	if i := strings.LastIndex(identifier, resendSuffix); i > 0 {
		n, err := strconv.Atoi(identifier[i+len(resendSuffix):])
		if err == nil && n > 0 && strconv.Itoa(n) == identifier[i+len(resendSuffix):] {
			return identifier[:i], n, true
		}
	}
	return identifier, 0, true
}

// IdempotencyKey is the Idempotency-Key header of a meter event request. It
// is the identifier plus a digest of the request, so a retry of the same
// request replays Stripe's stored answer, while a changed request (a redrive
// after the customer's Stripe account was fixed) is not refused as a
// mismatched replay; the identifier still stops double counting.
func IdempotencyKey(identifier, eventName, customer, value string, timestamp int64) string {
	sum := sha256.Sum256([]byte(eventName + "\x00" + customer + "\x00" + value + "\x00" + strconv.FormatInt(timestamp, 10)))
	return "egressd-" + identifier + "-" + hex.EncodeToString(sum[:8])
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
// Stripe-Should-Retry overrides both when Stripe sends it.
func classify(err error) error {
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
	if alreadyCounted(se) {
		// Stripe already has a meter event with this identifier: an
		// earlier attempt got through and only its reply was lost.
		return nil
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
