package fakestripe

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// meter is a billing meter: a sum of event values by customer, as egressd
// configures it.
type meter struct {
	id        string
	eventName string
	created   time.Time
}

// AddMeter creates a meter for eventName (or finds the one that exists, as
// Stripe allows one active meter per event name) and returns its id. From
// the first call on, only added meters exist.
func (f *Fake) AddMeter(eventName string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.explicitMeters = true
	if m := f.meterByName[eventName]; m != nil {
		return m.id
	}
	return f.newMeter(eventName).id
}

// AddCustomer makes a Stripe customer (cus_...) exist. From the first call
// on, meter events for other customers are accepted, then rejected with
// meter_event_customer_not_found in the next error report.
func (f *Fake) AddCustomer(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.explicitCustomers = true
	f.customers[id] = true
}

// newMeter creates a meter; f.mu must be held.
func (f *Fake) newMeter(eventName string) *meter {
	m := &meter{id: newID("mtr_test_"), eventName: eventName, created: f.clock()}
	f.meters = append(f.meters, m)
	f.meterByName[eventName] = m
	return m
}

// meterFor is the meter of eventName, nil if there is none. Until AddMeter
// is called, every event name has one. f.mu must be held.
func (f *Fake) meterFor(eventName string) *meter {
	if m := f.meterByName[eventName]; m != nil || f.explicitMeters {
		return m
	}
	return f.newMeter(eventName)
}

// checkCustomer answers the error Stripe reports for a meter event of
// customer, "" if the customer exists; f.mu must be held. The codes are
// those of Stripe's error reports (v1.billing.meter.error_report_triggered,
// data.reason.error_types[].code).
func (f *Fake) checkCustomer(customer string) (code, msg string) {
	switch {
	case customer == "":
		return "meter_event_no_customer_defined", "The payload has no stripe_customer_id."
	case f.explicitCustomers && !f.customers[customer]:
		return "meter_event_customer_not_found", "Customer " + customer + " does not exist."
	}
	return "", ""
}

func (m *meter) json() map[string]any {
	return map[string]any{
		"id":                  m.id,
		"object":              "billing.meter",
		"created":             m.created.Unix(),
		"customer_mapping":    map[string]string{"event_payload_key": "stripe_customer_id", "type": "by_id"},
		"default_aggregation": map[string]string{"formula": "sum"},
		"display_name":        m.eventName,
		"event_name":          m.eventName,
		"event_time_window":   nil,
		"livemode":            false,
		"status":              "active",
		"status_transitions":  map[string]any{"deactivated_at": nil},
		"updated":             m.created.Unix(),
		"value_settings":      map[string]string{"event_payload_key": "value"},
	}
}

// listMeters serves GET /v1/billing/meters, newest first, as Stripe lists.
func (f *Fake) listMeters(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	f.mu.Lock()
	var items []map[string]any
	if s := r.URL.Query().Get("status"); s == "" || s == "active" {
		for i := len(f.meters) - 1; i >= 0; i-- {
			items = append(items, f.meters[i].json())
		}
	}
	f.mu.Unlock()
	writeList(w, r, "/v1/billing/meters", items)
}

// getMeter serves GET /v1/billing/meters/{id}.
func (f *Fake) getMeter(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	f.mu.Lock()
	m := f.meterByID(r.PathValue("id"))
	f.mu.Unlock()
	if m == nil {
		noSuchMeter(r.PathValue("id")).write(w)
		return
	}
	writeJSON(w, http.StatusOK, m.json())
}

// meterByID finds a meter; f.mu must be held.
func (f *Fake) meterByID(id string) *meter {
	for _, m := range f.meters {
		if m.id == id {
			return m
		}
	}
	return nil
}

func noSuchMeter(id string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "resource_missing", param: "id",
		msg: "No such billing meter: '" + id + "'"}
}

// listEventSummaries serves GET /v1/billing/meters/{id}/event_summaries: the
// sum of the customer's billed events (accepted, not rejected, not
// cancelled) by event timestamp over [start_time, end_time), in one summary
// or one per hour or UTC day, newest first. The rules are stripe-go v81's
// BillingMeterEventSummaryListParams: customer, start_time and end_time are
// required, times are aligned to the minute, and to the hour or the UTC day
// when grouped by one; end_time is exclusive.
func (f *Fake) listEventSummaries(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	q := r.URL.Query()
	for _, p := range []string{"customer", "start_time", "end_time"} {
		if q.Get(p) == "" {
			invalid("parameter_missing", p, "Missing required param: "+p+".").write(w)
			return
		}
	}
	customer := q.Get("customer")
	start, err1 := strconv.ParseInt(q.Get("start_time"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("end_time"), 10, 64)
	if err1 != nil || err2 != nil {
		invalid("parameter_invalid_integer", "", "start_time and end_time are Unix timestamps").write(w)
		return
	}
	var step int64
	switch g := q.Get("value_grouping_window"); g {
	case "":
		step = end - start
	case "hour":
		step = 3600
	case "day":
		step = 86400
	default:
		invalid("", "value_grouping_window", "Invalid value_grouping_window: must be one of hour or day").write(w)
		return
	}
	switch {
	case start >= end:
		invalid("", "end_time", "end_time must be after start_time").write(w)
		return
	case start%60 != 0 || end%60 != 0:
		invalid("", "start_time", "start_time and end_time must be aligned with minute boundaries").write(w)
		return
	case q.Get("value_grouping_window") != "" && (start%step != 0 || end%step != 0):
		invalid("", "value_grouping_window", "start_time and end_time must be aligned with the grouping window's boundaries").write(w)
		return
	}

	f.mu.Lock()
	m := f.meterByID(r.PathValue("id"))
	unknown, _ := f.checkCustomer(customer)
	var items []map[string]any
	if m != nil {
		settled := f.clock().Add(-f.summaryLag)
		for to := end; to > start; to -= step {
			from := to - step
			var sum int64
			for _, ev := range f.accepted {
				if ev.EventName == m.eventName && ev.Customer == customer && billed(ev) &&
					ev.Timestamp >= from && ev.Timestamp < to && !ev.Received.After(settled) {
					sum += ev.Value
				}
			}
			items = append(items, map[string]any{
				"id":               summaryID(m.id, customer, from, to),
				"object":           "billing.meter_event_summary",
				"aggregated_value": float64(sum),
				"start_time":       from,
				"end_time":         to,
				"livemode":         false,
				"meter":            m.id,
			})
		}
	}
	f.mu.Unlock()
	switch {
	case m == nil:
		noSuchMeter(r.PathValue("id")).write(w)
	case unknown == "meter_event_customer_not_found":
		invalid("resource_missing", "customer", "No such customer: '"+customer+"'").write(w)
	default:
		writeList(w, r, r.URL.Path, items)
	}
}

// billed reports whether Stripe bills ev: accepted, not rejected, not cancelled.
func billed(ev *MeterEvent) bool { return ev.Error == "" && !ev.Cancelled }

// summaryID is a stable id for a summary, so that starting_after finds it.
func summaryID(meter, customer string, from, to int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", meter, customer, from, to))
	return "mtrusg_test_" + hex.EncodeToString(sum[:16])
}

// writeList answers one page of items in Stripe's list shape ({object:
// "list", data, has_more, url}), after starting_after, with limit 1 to 100
// (default 10).
func writeList(w http.ResponseWriter, r *http.Request, url string, items []map[string]any) {
	q := r.URL.Query()
	limit := 10
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			invalid("", "limit", "limit must be an integer between 1 and 100").write(w)
			return
		}
		limit = n
	}
	if after := q.Get("starting_after"); after != "" {
		i := 0
		for i < len(items) && items[i]["id"] != after {
			i++
		}
		if i == len(items) {
			invalid("resource_missing", "starting_after", "No such object: '"+after+"'").write(w)
			return
		}
		items = items[i+1:]
	}
	hasMore := len(items) > limit
	if hasMore {
		items = items[:limit]
	}
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": items, "has_more": hasMore, "url": url})
}
