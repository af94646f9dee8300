package fakestripe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/rawrequest"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// session creates a meter event session the way stripe-go v81's
// example/v2/meter_event_stream does, and returns its fields.
func session(t *testing.T, c clients) map[string]any {
	t.Helper()
	res, err := c.raw.RawRequest(http.MethodPost, "/v2/billing/meter_event_session", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(res.RawJSON, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// streamEvent is one event of a stream request, as the example builds it.
func streamEvent(eventName, identifier, customer, value string, ts time.Time) map[string]any {
	return map[string]any{
		"event_name": eventName,
		"identifier": identifier,
		"payload":    map[string]any{"stripe_customer_id": customer, "value": value},
		"timestamp":  ts.UTC().Format(time.RFC3339),
	}
}

// stream sends events on the meter-events host with the session token.
func stream(c clients, token string, events ...map[string]any) (*stripe.APIResponse, error) {
	body, _ := json.Marshal(map[string]any{"events": events})
	return rawrequest.Client{B: c.meterEvents, Key: token}.RawRequest(http.MethodPost, "/v2/billing/meter_event_stream", string(body), nil)
}

func TestMeterEventStream(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	c := newClients(t, f)
	s := session(t, c)
	created, _ := time.Parse(time.RFC3339, s["created"].(string))
	expires, _ := time.Parse(time.RFC3339, s["expires_at"].(string))
	if s["object"] != "v2.billing.meter_event_session" || s["livemode"] != false || s["id"] == "" ||
		!created.Equal(clock.Now()) || expires.Sub(created) != 15*time.Minute {
		t.Fatalf("session %v", s)
	}
	token := s["authentication_token"].(string)
	ts := clock.Now().Add(-time.Minute)
	res, err := stream(c, token,
		streamEvent("egress", "s1", "cus_a", "10", ts),
		streamEvent("egress", "s2", "cus_a", "20", ts),
		streamEvent("egress", "s3", "cus_b", "5", ts))
	if err != nil || res.StatusCode != 200 || string(res.RawJSON) != "{}\n" {
		t.Fatalf("stream: %v, %+v", err, res)
	}
	// A re-sent identifier is accepted and not counted again.
	if _, err := stream(c, token, streamEvent("egress", "s1", "cus_a", "10", ts)); err != nil {
		t.Fatal(err)
	}
	if got := f.Totals(); got["cus_a"] != 30 || got["cus_b"] != 5 || len(f.Accepted()) != 3 {
		t.Fatalf("totals %v, %d accepted", got, len(f.Accepted()))
	}
	if ev := f.Events()["s2"]; !ev.Stream || ev.Timestamp != ts.Unix() || ev.Value != 20 {
		t.Fatalf("recorded %+v", ev)
	}
	if f.Requests(fakestripe.StreamEndpoint) != 2 || f.Requests(fakestripe.SessionEndpoint) != 1 || f.Calls() != 0 {
		t.Fatal("requests miscounted")
	}
}

func TestStreamTakesAtMost100Events(t *testing.T) {
	f := newFake(t)
	c := newClients(t, f)
	token := session(t, c)["authentication_token"].(string)
	events := make([]map[string]any, 101)
	for i := range events {
		events[i] = streamEvent("egress", fmt.Sprint("e", i), "cus_a", "1", time.Now())
	}
	_, err := stream(c, token, events...)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 {
		t.Fatalf("101 events: %+v", se)
	}
	if len(f.Accepted()) != 0 {
		t.Fatal("a refused request's events were kept")
	}
	if _, err := stream(c, token, events[:100]...); err != nil {
		t.Fatalf("100 events: %v", err)
	}
	if f.Totals()["cus_a"] != 100 {
		t.Fatalf("totals %v", f.Totals())
	}
}

// TestStreamSessionExpires: a token past expires_at is a 401 that stripe-go
// reads as code billing_meter_event_session_expired; a new session works.
func TestStreamSessionExpires(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	f.SetSessionLifetime(time.Minute)
	c := newClients(t, f)
	token := session(t, c)["authentication_token"].(string)
	if _, err := stream(c, token, streamEvent("egress", "x1", "cus_a", "1", clock.Now())); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	_, err := stream(c, token, streamEvent("egress", "x2", "cus_a", "1", clock.Now()))
	se := stripeError(t, err)
	if se.HTTPStatusCode != 401 || se.Code != "billing_meter_event_session_expired" || se.Type != "temporary_session_expired" {
		t.Fatalf("expired session: %+v", se)
	}
	if _, err := stream(c, session(t, c)["authentication_token"].(string), streamEvent("egress", "x2", "cus_a", "1", clock.Now())); err != nil {
		t.Fatalf("new session: %v", err)
	}

	// The stream takes session tokens only, not the secret key.
	_, err = stream(c, fakestripe.Key, streamEvent("egress", "x3", "cus_a", "1", clock.Now()))
	if se := stripeError(t, err); se.HTTPStatusCode != 401 {
		t.Fatalf("secret key on the stream: %+v", se)
	}
	if f.Totals()["cus_a"] != 2 {
		t.Fatalf("totals %v", f.Totals())
	}
}

// TestStreamValidatesLater: every event of a well-formed request is
// accepted; those Stripe would reject are left out of the totals and
// reported, by meter, in the next error report.
func TestStreamValidatesLater(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	meterID := f.AddMeter("egress")
	f.AddCustomer("cus_a")
	c := newClients(t, f)
	token := session(t, c)["authentication_token"].(string)
	now := clock.Now()
	_, err := stream(c, token,
		streamEvent("egress", "ok", "cus_a", "7", now),
		streamEvent("egress", "unknown-customer", "cus_nobody", "1", now),
		streamEvent("egress", "bad-value", "cus_a", "1.5", now),
		streamEvent("egress", "long-value", "cus_a", "1000000000000000", now),
		streamEvent("egress", "too-old", "cus_a", "1", now.AddDate(0, 0, -36)),
		streamEvent("egress", "future", "cus_a", "1", now.Add(time.Hour)),
		streamEvent("egres", "no-meter", "cus_a", "1", now),
		map[string]any{"event_name": "egress", "identifier": "no-customer", "payload": map[string]any{"value": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Totals(); len(got) != 1 || got["cus_a"] != 7 {
		t.Fatalf("totals %v", got)
	}
	ids := f.ReportErrors()
	if len(ids) != 2 {
		t.Fatalf("%d error reports, want one for the meter and one for no meter", len(ids))
	}
	report, noMeter := getCoreEvent(t, c, ids[0]), getCoreEvent(t, c, ids[1])
	if report["type"] != fakestripe.ErrorReportTriggered || report["related_object"].(map[string]any)["id"] != meterID {
		t.Fatalf("report %v", report)
	}
	codes := map[string]string{}
	for _, et := range report["data"].(map[string]any)["reason"].(map[string]any)["error_types"].([]any) {
		et := et.(map[string]any)
		sample := et["sample_errors"].([]any)[0].(map[string]any)["request"].(map[string]any)["identifier"].(string)
		codes[et["code"].(string)] = sample
	}
	want := map[string]string{
		"meter_event_customer_not_found":    "unknown-customer",
		"meter_event_invalid_value":         "bad-value",
		"meter_event_value_too_many_digits": "long-value",
		"timestamp_too_far_in_past":         "too-old",
		"timestamp_in_future":               "future",
		"meter_event_no_customer_defined":   "no-customer",
	}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("error types %v, want %v", codes, want)
	}
	if noMeter["type"] != fakestripe.NoMeterFound || noMeter["related_object"] != nil {
		t.Fatalf("no meter %v", noMeter)
	}
	et := noMeter["data"].(map[string]any)["reason"].(map[string]any)["error_types"].([]any)[0].(map[string]any)
	if et["code"] != "no_meter" || et["error_count"] != 1.0 {
		t.Fatalf("no meter error type %v", et)
	}
}

// TestStreamFaults: a fault set for the stream fails the request before or
// after its events are recorded, and StreamRequests shows how each request
// was answered. The requests go through net/http: stripe-go v81's
// RawRequest panics on a dropped connection (stripe/stripe-go issue #2211).
func TestStreamFaults(t *testing.T) {
	f := newFake(t)
	c := newClients(t, f)
	token := session(t, c)["authentication_token"].(string)
	faults := map[int]fakestripe.Fault{1: fakestripe.ServerError, 2: fakestripe.DropBefore, 3: fakestripe.ServerErrorAfter, 4: fakestripe.DropAfter, 5: fakestripe.TooManyRequests}
	var seen []int
	f.SetStreamFault(func(n int, events []fakestripe.MeterEvent) fakestripe.Fault {
		seen = append(seen, len(events))
		return faults[n]
	})
	now := time.Now()
	for i := 1; i <= 6; i++ {
		body, _ := json.Marshal(map[string]any{"events": []map[string]any{
			streamEvent("egress", fmt.Sprint("f", i), "cus_a", "1", now), streamEvent("egress", fmt.Sprint("g", i), "cus_a", "1", now)}})
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/v2/billing/meter_event_stream", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		status := 0
		if err == nil {
			status = res.StatusCode
			res.Body.Close()
		}
		if want := map[int]int{1: 500, 3: 500, 5: 429, 6: 200}[i]; status != want {
			t.Fatalf("request %d (fault %v): status %d, err %v; want %d", i, faults[i], status, err, want)
		}
	}
	// Recorded: the requests failed after recording (3, 4) and the last.
	if got := f.Totals()["cus_a"]; got != 6 {
		t.Fatalf("total %d, want 6 (three requests of two events recorded)", got)
	}
	for _, id := range []string{"f1", "f2", "f5"} {
		if _, ok := f.Events()[id]; ok {
			t.Errorf("%s was recorded, though its request failed before recording", id)
		}
	}
	var statuses []int
	for _, r := range f.StreamRequests() {
		if r.Events != 2 {
			t.Errorf("stream request of %d events, want 2", r.Events)
		}
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[500 0 500 0 429 200]" || fmt.Sprint(seen) != "[2 2 2 2 2 2]" {
		t.Fatalf("statuses %v, fault saw %v", statuses, seen)
	}
	if r := f.StreamRequests()[4]; r.Code != "rate_limit" {
		t.Fatalf("429 answered with code %q", r.Code)
	}
}
