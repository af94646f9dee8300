// Package stripetest gives tests the fake Stripe of package fakestripe, closed
// when the test ends. The fake itself lives in fakestripe so that the shipped
// binary, which runs it for egressd bench --worker, links neither testing nor
// net/http/httptest; this package re-exports its names so that a test needs
// only this import.
package stripetest

import (
	"testing"
	"time"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// New starts a fake on 127.0.0.1, closed when the test ends.
func New(t testing.TB) *Fake {
	t.Helper()
	f, err := fakestripe.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Start starts a fake outside a test's cleanup; Close stops it. It panics if
// no port can be had, as httptest.NewServer does; code outside tests calls
// fakestripe.Start, which returns the error.
func Start() *Fake {
	f, err := fakestripe.Start()
	if err != nil {
		panic(err)
	}
	return f
}

// Signature is fakestripe.Signature: the Stripe-Signature header of payload
// sent at t, signed with secret.
func Signature(payload []byte, secret string, t time.Time) string {
	return fakestripe.Signature(payload, secret, t)
}

// The fake's types, so that tests name them from here.
type (
	Fake          = fakestripe.Fake
	Fault         = fakestripe.Fault
	MeterEvent    = fakestripe.MeterEvent
	RateLimited   = fakestripe.RateLimited
	StreamRequest = fakestripe.StreamRequest
	Delivery      = fakestripe.Delivery
)

// Key is the secret key the fake accepts.
const Key = fakestripe.Key

// The endpoints the fake serves, as Fake.Requests counts them.
const (
	MeterEventsEndpoint    = fakestripe.MeterEventsEndpoint
	MetersEndpoint         = fakestripe.MetersEndpoint
	MeterEndpoint          = fakestripe.MeterEndpoint
	EventSummariesEndpoint = fakestripe.EventSummariesEndpoint
	AdjustmentsEndpoint    = fakestripe.AdjustmentsEndpoint
	SessionEndpoint        = fakestripe.SessionEndpoint
	StreamEndpoint         = fakestripe.StreamEndpoint
	CoreEventEndpoint      = fakestripe.CoreEventEndpoint
)

// The faults; see fakestripe.Fault.
const (
	None             = fakestripe.None
	TooManyRequests  = fakestripe.TooManyRequests
	ServerError      = fakestripe.ServerError
	ServerErrorAfter = fakestripe.ServerErrorAfter
	DropBefore       = fakestripe.DropBefore
	DropAfter        = fakestripe.DropAfter
	SlowAfter        = fakestripe.SlowAfter
	Reject           = fakestripe.Reject
)

// The v2 event types and the error report's sample limit; see fakestripe.
const (
	SampleErrorsPerType  = fakestripe.SampleErrorsPerType
	ErrorReportTriggered = fakestripe.ErrorReportTriggered
	NoMeterFound         = fakestripe.NoMeterFound
)
