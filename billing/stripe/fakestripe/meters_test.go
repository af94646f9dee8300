package fakestripe_test

import (
	"fmt"
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

// TestListMeters: stripe-go's iterator walks the list page by page, newest
// meter first, and finds a meter by event name as reconciliation does.
func TestListMeters(t *testing.T) {
	f := newFake(t)
	ids := []string{f.AddMeter("egress"), f.AddMeter("storage"), f.AddMeter("retrievals")}
	if again := f.AddMeter("egress"); again != ids[0] {
		t.Fatalf("a second meter for egress: %s", again)
	}
	c := newClients(t, f)
	params := &stripe.BillingMeterListParams{}
	params.Limit = stripe.Int64(2)
	it := c.meters.List(params)
	var got []string
	for it.Next() {
		m := it.BillingMeter()
		if m.Object != "billing.meter" || m.Status != "active" || m.DisplayName != m.EventName ||
			m.CustomerMapping.EventPayloadKey != "stripe_customer_id" || m.ValueSettings.EventPayloadKey != "value" {
			t.Fatalf("meter %+v", m)
		}
		got = append(got, m.EventName+"="+m.ID)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"retrievals=" + ids[2], "storage=" + ids[1], "egress=" + ids[0]})
	if fmt.Sprint(got) != want {
		t.Fatalf("meters %v, want %v", got, want)
	}
	if n := f.Requests(fakestripe.MetersEndpoint); n != 2 {
		t.Fatalf("%d list requests for 3 meters by 2, want 2", n)
	}

	m, err := c.meters.Get(ids[1], nil)
	if err != nil || m.EventName != "storage" {
		t.Fatalf("get: %+v, %v", m, err)
	}
	_, err = c.meters.Get("mtr_nope", nil)
	if se := stripeError(t, err); se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing {
		t.Fatalf("unknown meter: %+v", se)
	}
}

// TestEventSummaries: summaries sum the customer's events by timestamp over
// [start, end), whole or by hour (newest first, paginated), and only for
// billed events: not another customer's, not a rejected one.
func TestEventSummaries(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	id := f.AddMeter("egress")
	f.AddCustomer("cus_a")
	f.AddCustomer("cus_b")
	c := newClients(t, f)
	hour := clock.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	send := func(identifier, customer string, value int64, ts time.Time) {
		t.Helper()
		if _, err := c.events.New(meterEvent("egress", identifier, customer, value, ts)); err != nil {
			t.Fatal(err)
		}
	}
	send("a1", "cus_a", 1, hour)                        // first hour, at its start
	send("a2", "cus_a", 10, hour.Add(59*time.Minute))   // first hour
	send("a3", "cus_a", 100, hour.Add(2*time.Hour))     // third hour
	send("a4", "cus_a", 1000, hour.Add(3*time.Hour))    // at end_time: excluded
	send("b1", "cus_b", 5000, hour.Add(30*time.Minute)) // another customer
	send("x1", "cus_late", 7000, hour.Add(time.Minute)) // rejected later
	start, end := hour.Unix(), hour.Add(3*time.Hour).Unix()

	whole := summaries(t, c, id, "cus_a", start, end, "", 0)
	if len(whole) != 1 || whole[0].AggregatedValue != 111 || whole[0].StartTime != start || whole[0].EndTime != end ||
		whole[0].Meter != id || whole[0].Object != "billing.meter_event_summary" {
		t.Fatalf("whole range: %+v", whole)
	}
	hourly := summaries(t, c, id, "cus_a", start, end, "hour", 2)
	var got []float64
	for _, s := range hourly {
		got = append(got, s.AggregatedValue)
	}
	if fmt.Sprint(got) != "[100 0 11]" || hourly[0].StartTime != hour.Add(2*time.Hour).Unix() {
		t.Fatalf("hourly, newest first: %v (%+v)", got, hourly)
	}
	if n := f.Requests(fakestripe.EventSummariesEndpoint); n != 3 {
		t.Fatalf("%d summary requests, want 1 + 2 pages", n)
	}
	// A customer created after its event was rejected has nothing billed.
	f.AddCustomer("cus_late")
	if s := summaries(t, c, id, "cus_late", start, end, "", 0); s[0].AggregatedValue != 0 || f.Events()["x1"].Error != "meter_event_customer_not_found" {
		t.Fatalf("rejected event summed: %+v, %+v", s[0], f.Events()["x1"])
	}
	if daily := summaries(t, c, id, "cus_b", hour.Truncate(24*time.Hour).Unix(), hour.Truncate(24*time.Hour).Add(24*time.Hour).Unix(), "day", 0); len(daily) != 1 || daily[0].AggregatedValue != 5000 {
		t.Fatalf("daily for cus_b: %+v", daily)
	}

	for name, p := range map[string]*stripe.BillingMeterEventSummaryListParams{
		"not minute aligned": summaryParams(id, "cus_a", start+30, end, ""),
		"hour not aligned":   summaryParams(id, "cus_a", start+60, end, "hour"),
		"end before start":   summaryParams(id, "cus_a", end, start, ""),
		"unknown customer":   summaryParams(id, "cus_gone", start, end, ""),
		"unknown window":     summaryParams(id, "cus_a", start, end, "week"),
		"no customer":        summaryParams(id, "", start, end, ""),
		"unknown meter":      summaryParams("mtr_nope", "cus_a", start, end, ""),
	} {
		it := c.summaries.List(p)
		if it.Next() || it.Err() == nil {
			t.Errorf("%s: no error", name)
		} else if se := stripeError(t, it.Err()); se.HTTPStatusCode != 400 && se.HTTPStatusCode != 404 {
			t.Errorf("%s: %+v", name, se)
		}
	}
}

// TestSummariesLag: with a lag set, an event Stripe just received is not yet
// in the summaries, as reconciliation must allow for.
func TestSummariesLag(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	f.SetSummaryLag(5 * time.Minute)
	id := f.AddMeter("egress")
	c := newClients(t, f)
	ts := clock.Now().Add(-10 * time.Minute)
	if _, err := c.events.New(meterEvent("egress", "late", "cus_a", 42, ts)); err != nil {
		t.Fatal(err)
	}
	start, end := clock.Now().Add(-time.Hour).Truncate(time.Minute).Unix(), clock.Now().Truncate(time.Minute).Unix()
	if s := summaries(t, c, id, "cus_a", start, end, "", 0); s[0].AggregatedValue != 0 {
		t.Fatalf("just received, already summed: %+v", s[0])
	}
	clock.advance(5 * time.Minute)
	if s := summaries(t, c, id, "cus_a", start, end, "", 0); s[0].AggregatedValue != 42 {
		t.Fatalf("5 minutes later, not summed: %+v", s[0])
	}
}

func summaryParams(meter, customer string, start, end int64, window string) *stripe.BillingMeterEventSummaryListParams {
	p := &stripe.BillingMeterEventSummaryListParams{
		ID:        stripe.String(meter),
		Customer:  stripe.String(customer),
		StartTime: stripe.Int64(start),
		EndTime:   stripe.Int64(end),
	}
	if window != "" {
		p.ValueGroupingWindow = stripe.String(window)
	}
	return p
}

// summaries lists all summaries with stripe-go's iterator, limit a page
// (0 for the default).
func summaries(t *testing.T, c clients, meter, customer string, start, end int64, window string, limit int64) []*stripe.BillingMeterEventSummary {
	t.Helper()
	p := summaryParams(meter, customer, start, end, window)
	if limit > 0 {
		p.Limit = stripe.Int64(limit)
	}
	it := c.summaries.List(p)
	var out []*stripe.BillingMeterEventSummary
	for it.Next() {
		out = append(out, it.BillingMeterEventSummary())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
