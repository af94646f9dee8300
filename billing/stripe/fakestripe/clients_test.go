package fakestripe_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/billing/meter"
	"github.com/stripe/stripe-go/v81/billing/meterevent"
	"github.com/stripe/stripe-go/v81/billing/metereventadjustment"
	"github.com/stripe/stripe-go/v81/billing/metereventsummary"
	"github.com/stripe/stripe-go/v81/rawrequest"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// clients are stripe-go v81's own clients, pointed at one fake the way
// egressd's --stripe-url points both Stripe hosts at it.
type clients struct {
	events      meterevent.Client
	meters      meter.Client
	summaries   metereventsummary.Client
	adjustments metereventadjustment.Client
	// raw calls the API host with the secret key (v2 sessions and events).
	raw rawrequest.Client
	// meterEvents is the meter-events host, for the v2 stream; its callers
	// bring a session token.
	meterEvents stripe.RawRequestBackend
}

func newClients(t *testing.T, f *fakestripe.Fake) clients {
	t.Helper()
	cfg := &stripe.BackendConfig{
		URL:               stripe.String(f.URL),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	api := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	rawAPI, ok := api.(stripe.RawRequestBackend)
	if !ok {
		t.Fatal("stripe-go's API backend makes no raw requests")
	}
	meterEvents, ok := stripe.GetBackendWithConfig(stripe.MeterEventsBackend, cfg).(stripe.RawRequestBackend)
	if !ok {
		t.Fatal("stripe-go's meter-events backend makes no raw requests")
	}
	return clients{
		events:      meterevent.Client{B: api, Key: fakestripe.Key},
		meters:      meter.Client{B: api, Key: fakestripe.Key},
		summaries:   metereventsummary.Client{B: api, Key: fakestripe.Key},
		adjustments: metereventadjustment.Client{B: api, Key: fakestripe.Key},
		raw:         rawrequest.Client{B: rawAPI, Key: fakestripe.Key},
		meterEvents: meterEvents,
	}
}

// fixedClock is a clock that stands still until a test moves it.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fixedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// setClock gives the fake a fixed clock, at noon on 15 March 2026 UTC.
func setClock(f *fakestripe.Fake) *fixedClock {
	c := &fixedClock{now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}
	f.SetNow(c.Now)
	return c
}

// meterEvent is a v1 meter event's parameters.
func meterEvent(eventName, identifier, customer string, value int64, ts time.Time) *stripe.BillingMeterEventParams {
	return &stripe.BillingMeterEventParams{
		EventName:  stripe.String(eventName),
		Identifier: stripe.String(identifier),
		Payload:    map[string]string{"stripe_customer_id": customer, "value": strconv.FormatInt(value, 10)},
		Timestamp:  stripe.Int64(ts.Unix()),
	}
}

// stripeError is err as stripe-go's *stripe.Error, failing the test if it
// is not one.
func stripeError(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *stripe.Error", err)
	}
	return se
}

// getCoreEvent fetches a v2 event as a receiver of a thin event does, with
// stripe-go's raw request.
func getCoreEvent(t *testing.T, c clients, id string) map[string]any {
	t.Helper()
	res, err := c.raw.RawRequest(http.MethodGet, "/v2/core/events/"+id, "", nil)
	if err != nil {
		t.Fatalf("GET /v2/core/events/%s: %v", id, err)
	}
	var ev map[string]any
	if err := json.Unmarshal(res.RawJSON, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}
