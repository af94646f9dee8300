package fakestripe_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v81/webhook"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// TestUnknownCustomerIsReportedLater: v1 accepts a meter event for a
// customer Stripe does not have, bills nothing, and reports it later in an
// error report whose samples name some of the identifiers, not all.
func TestUnknownCustomerIsReportedLater(t *testing.T) {
	f := newFake(t)
	meterID := f.AddMeter("egress")
	f.AddCustomer("cus_known")
	c := newClients(t, f)
	var sent []string
	for i := range fakestripe.SampleErrorsPerType + 2 {
		id := fmt.Sprint("lost-", i)
		sent = append(sent, id)
		if _, err := c.events.New(meterEvent("egress", id, "cus_unknown", 100, time.Now())); err != nil {
			t.Fatalf("Stripe refused at once what it rejects later: %v", err)
		}
	}
	if _, err := c.events.New(meterEvent("egress", "fine", "cus_known", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if got := f.Totals(); got["cus_unknown"] != 0 || got["cus_known"] != 1 {
		t.Fatalf("totals %v", got)
	}

	ids := f.ReportErrors()
	if len(ids) != 1 {
		t.Fatalf("%d reports, want 1", len(ids))
	}
	ev := getCoreEvent(t, c, ids[0])
	related := ev["related_object"].(map[string]any)
	if ev["object"] != "v2.core.event" || ev["type"] != fakestripe.ErrorReportTriggered ||
		related["id"] != meterID || related["type"] != "billing.meter" || related["url"] != "/v1/billing/meters/"+meterID {
		t.Fatalf("event %v", ev)
	}
	data := ev["data"].(map[string]any)
	reason := data["reason"].(map[string]any)
	types := reason["error_types"].([]any)
	et := types[0].(map[string]any)
	samples := et["sample_errors"].([]any)
	if len(types) != 1 || et["code"] != "meter_event_customer_not_found" ||
		reason["error_count"] != float64(len(sent)) || et["error_count"] != float64(len(sent)) ||
		len(samples) != fakestripe.SampleErrorsPerType {
		t.Fatalf("reason %v", reason)
	}
	for _, s := range samples {
		id := s.(map[string]any)["request"].(map[string]any)["identifier"].(string)
		if !slices.Contains(sent, id) {
			t.Fatalf("sample %q was not sent", id)
		}
	}
	for _, k := range []string{"developer_message_summary", "validation_start", "validation_end"} {
		if data[k] == nil {
			t.Errorf("data has no %s", k)
		}
	}
	if again := f.ReportErrors(); len(again) != 0 {
		t.Fatalf("errors reported twice: %v", again)
	}
}

// TestRejectedIdentifierStaysTaken: once Stripe has accepted an event for an
// unknown customer, sending it again after fixing the customer is refused as
// a duplicate: the usage must be sent under a new identifier.
func TestRejectedIdentifierStaysTaken(t *testing.T) {
	f := newFake(t)
	f.AddCustomer("cus_other")
	c := newClients(t, f)
	if _, err := c.events.New(meterEvent("egress", "bafy-early", "cus_late", 5, time.Now())); err != nil {
		t.Fatal(err)
	}
	f.AddCustomer("cus_late")
	_, err := c.events.New(meterEvent("egress", "bafy-early", "cus_late", 5, time.Now()))
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Msg != "An event already exists with identifier bafy-early." {
		t.Fatalf("re-send after the fix: %+v", se)
	}
	if f.Totals()["cus_late"] != 0 {
		t.Fatalf("totals %v", f.Totals())
	}
}

// receiver is an event destination: it checks each delivery's signature
// with stripe-go's webhook package, as a handler would, and passes the thin
// events on.
func receiver(t *testing.T, secret string) (string, chan map[string]any) {
	t.Helper()
	got := make(chan map[string]any, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, _ := io.ReadAll(r.Body)
		if err := webhook.ValidatePayload(payload, r.Header.Get("Stripe-Signature"), secret); err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if err := webhook.ValidatePayload(payload, r.Header.Get("Stripe-Signature"), secret+"x"); err != webhook.ErrNoValidSignature {
			t.Errorf("another secret's check: %v", err)
		}
		var thin map[string]any
		if err := json.Unmarshal(payload, &thin); err != nil {
			t.Errorf("payload: %v", err)
		}
		got <- thin
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

func TestWebhookDeliversSignedThinEvents(t *testing.T) {
	f := newFake(t)
	meterID := f.AddMeter("egress")
	f.AddCustomer("cus_known")
	url, got := receiver(t, "whsec_test")
	f.SetWebhook(url, "whsec_test")
	c := newClients(t, f)
	if _, err := c.events.New(meterEvent("egress", "lost", "cus_unknown", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	ids := f.ReportErrors()
	thin := receive(t, got)
	var keys []string
	for k := range thin {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if fmt.Sprint(keys) != "[context created id livemode object related_object type]" {
		t.Fatalf("thin event has %v", keys)
	}
	if thin["id"] != ids[0] || thin["object"] != "v2.core.event" || thin["type"] != fakestripe.ErrorReportTriggered ||
		thin["related_object"].(map[string]any)["id"] != meterID {
		t.Fatalf("thin event %v", thin)
	}
	if _, err := time.Parse(time.RFC3339, thin["created"].(string)); err != nil {
		t.Fatalf("created: %v", err)
	}
	// The receiver fetches the full event by the thin event's id.
	if full := getCoreEvent(t, c, thin["id"].(string)); full["data"] == nil {
		t.Fatalf("full event %v", full)
	}
	if d := f.Deliveries(); len(d) != 1 || d[0].Status != 200 || d[0].EventID != ids[0] || d[0].Err != nil {
		t.Fatalf("deliveries %+v", d)
	}
}

func TestAutoReport(t *testing.T) {
	f := newFake(t)
	f.AddCustomer("cus_known")
	url, got := receiver(t, "whsec_auto")
	f.SetWebhook(url, "whsec_auto")
	f.SetAutoReport(50 * time.Millisecond)
	c := newClients(t, f)
	if _, err := c.events.New(meterEvent("egress", "lost", "cus_unknown", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if thin := receive(t, got); thin["type"] != fakestripe.ErrorReportTriggered {
		t.Fatalf("thin event %v", thin)
	}
}

// receive waits for the receiver's next thin event.
func receive(t *testing.T, got chan map[string]any) map[string]any {
	t.Helper()
	select {
	case thin := <-got:
		return thin
	case <-time.After(10 * time.Second):
		t.Fatal("no thin event delivered")
		return nil
	}
}

func TestSignature(t *testing.T) {
	payload := []byte(`{"id":"evt_test_1"}`)
	at := time.Now()
	header := fakestripe.Signature(payload, "whsec_s", at)
	if err := webhook.ValidatePayload(payload, header, "whsec_s"); err != nil {
		t.Fatal(err)
	}
	if err := webhook.ValidatePayload(append(payload, ' '), header, "whsec_s"); err != webhook.ErrNoValidSignature {
		t.Fatalf("altered payload: %v", err)
	}
	old := fakestripe.Signature(payload, "whsec_s", at.Add(-time.Hour))
	if err := webhook.ValidatePayload(payload, old, "whsec_s"); err != webhook.ErrTooOld {
		t.Fatalf("an hour-old signature: %v", err)
	}
}
