package fakestripe_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// newFake starts a fake closed when the test ends, as stripetest.New does for
// other packages' tests.
func newFake(t *testing.T) *fakestripe.Fake {
	t.Helper()
	f, err := fakestripe.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// postMeterEvent sends a v1 meter event request and returns its status.
func postMeterEvent(f *fakestripe.Fake) (int, error) {
	form := url.Values{"event_name": {"egress"}, "payload[stripe_customer_id]": {"cus_a"}, "payload[value]": {"1"}}
	req, err := http.NewRequest(http.MethodPost, f.URL+"/v1/billing/meter_events", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+fakestripe.Key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// Close lets a request in flight finish, as httptest's Close did, so that
// nothing reaches the fake's state after Close returns; then it refuses
// connections.
func TestCloseWaitsForRequestsInFlight(t *testing.T) {
	f, err := fakestripe.Start()
	if err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	f.SetDelay(delay)
	type answer struct {
		status int
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, err := postMeterEvent(f)
		answered <- answer{status, err}
	}()
	for f.Calls() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	f.Close()
	select {
	case a := <-answered:
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("request in flight at Close: status %d, error %v; want 200", a.status, a.err)
		}
	default:
		t.Fatal("Close returned before the request in flight was answered")
	}
	if got := len(f.Accepted()); got != 1 {
		t.Errorf("fake accepted %d events, want 1", got)
	}
	if _, err := postMeterEvent(f); err == nil {
		t.Error("a request after Close was answered")
	}
}
