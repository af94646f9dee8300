// Package stripe bills egress to Stripe Billing Meters: a billing.Sink that
// sends each batch as one meter event whose identifier derives from the
// batch's ID, so Stripe counts it once however often it is sent. It speaks
// either v1 meter events (one call per event, one call per customer at a
// time, so the worker sums a customer's window into one event) or the v2
// meter event stream (up to 100 events a request under a short-lived
// session, no per-customer rule, so each egress event goes as it is).
package stripe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// The Stripe APIs a Reporter can send meter events through (Config.API).
const (
	// APIV1 is POST /v1/billing/meter_events: one event per call, answered
	// (and validated) at once, one call per customer and meter at a time.
	APIV1 = "v1"
	// APIV2 is POST /v2/billing/meter_event_stream: up to 100 events per
	// request under a meter event session, validated after answering.
	APIV2 = "v2"
)

// APIs lists the values Config.API takes, the default first.
var APIs = []string{APIV1, APIV2}

// Defaults for Config.
const (
	// DefaultEventName is the meter's event_name.
	DefaultEventName = "egress"
	// DefaultRate is Stripe requests per second: under the 25 req/s a
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

// MaxStreamEvents is the most events one v2 meter event stream request
// carries (API reference v2, Create meter events on the stream: "Supports up
// to 100 events per request").
const MaxStreamEvents = 100

// Config configures a Reporter. Key is required.
type Config struct {
	// Key is the Stripe secret key (sk_live_..., sk_test_..., rk_...).
	Key string
	// API is APIV1 (empty means it) or APIV2.
	API string
	// URL replaces both Stripe hosts, https://api.stripe.com and (for v2
	// streams) https://meter-events.stripe.com; empty keeps them. Point it
	// at stripe-mock, the fake in fakestripe, or a proxy.
	URL string
	// EventName is the meter's event_name; empty is DefaultEventName.
	EventName string
	// Rate is the most Stripe requests per second across all customers (v1:
	// meter events; v2: stream requests and session renewals); zero is
	// DefaultRate.
	Rate float64
	// Timeout bounds one call; zero is DefaultTimeout. A call that times
	// out is retried: the identifier keeps it from counting twice.
	Timeout time.Duration
	// HTTPClient makes the calls; nil is a client with Timeout.
	HTTPClient *http.Client
	// Logger receives debug lines for each call; nil is slog.Default().
	Logger *slog.Logger
}

// Reporter is the Stripe billing.Sink. It is safe for concurrent use. On
// v1 the caller keeps calls for one customer serial (Limits says so, as
// Stripe allows one at a time); on v2 concurrent calls share one session.
type Reporter struct {
	api       string
	eventName string
	limiter   *rate.Limiter
	log       *slog.Logger
	// now is the local clock that times session renewals; tests replace it.
	now func() time.Time

	key    string
	events meterevent.Client // v1 meter events
	meters meter.Client      // Check
	// apiHost is the API host, called with the secret key (v2 sessions).
	apiHost v2Host
	// streamHost is the meter-events host, called with a session's token.
	streamHost v2Host
	sessions   *sessions
}

var _ billing.Sink = (*Reporter)(nil)

// New builds a Reporter from cfg.
func New(cfg Config) (*Reporter, error) {
	if cfg.Key == "" {
		return nil, errors.New("stripe: no secret key")
	}
	switch cfg.API {
	case "":
		cfg.API = APIV1
	case APIV1, APIV2:
	default:
		return nil, fmt.Errorf("stripe: API %q: want %s", cfg.API, strings.Join(APIs, " or "))
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
		// The worker logs outcomes itself, with the batch they belong to.
		LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
	}
	if cfg.URL != "" {
		backendCfg.URL = stripego.String(cfg.URL)
	}
	apiHost, err := newV2Host(stripego.APIBackend, backendCfg)
	if err != nil {
		return nil, fmt.Errorf("stripe: %w", err)
	}
	streamHost, err := newV2Host(stripego.MeterEventsBackend, backendCfg)
	if err != nil {
		return nil, fmt.Errorf("stripe: %w", err)
	}
	// Bursts of a tenth of a second's worth of calls smooth out the
	// per-customer serialisation without ever exceeding Rate on average.
	burst := max(1, int(cfg.Rate/10))
	r := &Reporter{
		api:        cfg.API,
		eventName:  cfg.EventName,
		limiter:    rate.NewLimiter(rate.Limit(cfg.Rate), burst),
		log:        cfg.Logger,
		now:        time.Now,
		key:        cfg.Key,
		events:     meterevent.Client{B: apiHost.b, Key: cfg.Key},
		meters:     meter.Client{B: apiHost.b, Key: cfg.Key},
		apiHost:    apiHost,
		streamHost: streamHost,
	}
	r.sessions = &sessions{create: r.newSession, now: func() time.Time { return r.now() }, timeout: cfg.Timeout}
	return r, nil
}

// Name is "stripe".
func (r *Reporter) Name() string { return "stripe" }

// API is the Stripe API the Reporter sends through, APIV1 or APIV2.
func (r *Reporter) API() string { return r.api }

// Limits are Stripe's rules for the API in use. v1: one meter event per
// call and one call per customer and meter at a time (Stripe answers a
// second one 429), so a customer's window is summed into one charge. v2:
// 100 events per stream request and no per-customer rule, so events go
// one by one, each under its own cause.
func (r *Reporter) Limits() billing.SinkLimits {
	if r.api == APIV2 {
		return billing.SinkLimits{MaxCharges: MaxStreamEvents, MaxValue: MaxValue}
	}
	return billing.SinkLimits{MaxCharges: 1, OneCallPerCustomer: true, Aggregate: true, MaxValue: MaxValue}
}

// Report sends each charge as one meter event under BatchIdentifier, with
// the batch's bytes as value and its timestamp, and returns one error per
// charge (nil: Stripe has the event, from this call or an earlier one).
func (r *Reporter) Report(ctx context.Context, charges []billing.Charge) []error {
	if r.api == APIV2 {
		return r.reportV2(ctx, charges)
	}
	return r.reportV1(ctx, charges)
}

// checkCharge reads the Stripe customer of a charge and checks its value,
// refusing for good, without calling Stripe, what Stripe would reject or
// what would lower the customer's usage (Stripe takes negative values as
// corrections). The batch becomes unbillable with the reason, for an
// operator to look at.
func checkCharge(c billing.Charge) (customer string, err error) {
	customer, ok := strings.CutPrefix(c.Account, "stripe:")
	if !ok || !strings.HasPrefix(customer, "cus_") {
		return "", &billing.ReportError{Reason: fmt.Sprintf("account %q is not a Stripe customer (stripe:cus_...)", c.Account)}
	}
	switch bytes := c.Batch.Bytes; {
	case bytes <= 0:
		return "", &billing.ReportError{Reason: fmt.Sprintf("meter event value %d: egress must be a positive number of bytes", bytes)}
	case bytes > MaxValue:
		return "", &billing.ReportError{Reason: fmt.Sprintf("meter event value %d has %d digits: Stripe takes at most 15 (up to %d)",
			bytes, len(strconv.FormatInt(bytes, 10)), MaxValue)}
	}
	return customer, nil
}
