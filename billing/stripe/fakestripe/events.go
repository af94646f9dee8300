package fakestripe

import (
	"fmt"
	"net/http"
	"time"
)

// SampleErrorsPerType is the most sample_errors an error report carries for
// one error code. Stripe documents sample_errors only as samples of the
// errors of a type, without a number, next to error_count, the number of
// errors of that type; its published example carries one. The fake keeps a
// few, so that a test cannot mistake the samples for the list of rejected
// events: only totals (summaries) account for all of them.
const SampleErrorsPerType = 5

// The v2 event types by which Stripe reports meter events it accepted, then
// rejected (API reference v2, Types of events).
const (
	ErrorReportTriggered = "v1.billing.meter.error_report_triggered"
	NoMeterFound         = "v1.billing.meter.no_meter_found"
)

// asyncError is an accepted meter event that failed Stripe's later checks.
type asyncError struct {
	meterID    string // "" if the event named no meter
	code       string
	msg        string
	identifier string
	at         time.Time
}

// coreEvent is a v2 event (v2.core.event) the fake has published.
type coreEvent struct {
	id      string
	typ     string
	created time.Time
	meterID string // the related object; "" for none
	data    map[string]any
}

// reportLater queues the error of ev for the next report, and schedules one
// if SetAutoReport asked for it. f.mu must be held.
func (f *Fake) reportLater(ev *MeterEvent, code, msg string) {
	e := asyncError{code: code, msg: msg, identifier: ev.Identifier, at: f.clock()}
	if code != "no_meter" {
		if m := f.meterFor(ev.EventName); m != nil {
			e.meterID = m.id
		}
	}
	f.pending = append(f.pending, e)
	if f.reportDelay > 0 && f.reportTimer == nil && !f.closed {
		f.reportTimer = time.AfterFunc(f.reportDelay, func() { f.ReportErrors() })
	}
}

// ReportErrors publishes the errors found since the last report, as Stripe
// does some time after accepting the events: one
// v1.billing.meter.error_report_triggered event per meter, and one
// v1.billing.meter.no_meter_found event for events that named no meter. If a
// webhook is set it then delivers their thin events, one at a time, before
// returning. It returns the new events' ids; GET /v2/core/events/{id} serves
// each in full.
func (f *Fake) ReportErrors() []string {
	f.mu.Lock()
	pending := f.pending
	f.pending = nil
	if f.reportTimer != nil {
		f.reportTimer.Stop()
		f.reportTimer = nil
	}
	now := f.clock()
	var order []string
	byMeter := make(map[string][]asyncError)
	for _, e := range pending {
		if _, ok := byMeter[e.meterID]; !ok {
			order = append(order, e.meterID)
		}
		byMeter[e.meterID] = append(byMeter[e.meterID], e)
	}
	events := make([]*coreEvent, 0, len(order))
	for _, meterID := range order {
		ev := &coreEvent{id: newID("evt_test_"), typ: ErrorReportTriggered, created: now, meterID: meterID, data: errorReport(byMeter[meterID])}
		if meterID == "" {
			ev.typ = NoMeterFound
		}
		f.coreEvents[ev.id] = ev
		events = append(events, ev)
	}
	url, secret := f.webhookURL, f.secret
	f.mu.Unlock()

	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.id
		if url != "" {
			f.deliver(url, secret, ev)
		}
	}
	return ids
}

// errorReport is the data of an error report over errs, in the shape of
// Stripe's v2 event object: developer_message_summary, reason.error_count,
// reason.error_types[] with code, error_count and at most
// SampleErrorsPerType sample_errors[] of {error_message, request:
// {identifier}}, and the validation window.
func errorReport(errs []asyncError) map[string]any {
	var codes []string
	byCode := make(map[string][]asyncError)
	for _, e := range errs {
		if _, ok := byCode[e.code]; !ok {
			codes = append(codes, e.code)
		}
		byCode[e.code] = append(byCode[e.code], e)
	}
	types := make([]map[string]any, 0, len(codes))
	for _, code := range codes {
		list := byCode[code]
		samples := make([]map[string]any, 0, SampleErrorsPerType)
		for _, e := range list[:min(len(list), SampleErrorsPerType)] {
			samples = append(samples, map[string]any{
				"error_message": e.msg,
				"request":       map[string]string{"identifier": e.identifier},
			})
		}
		types = append(types, map[string]any{"code": code, "error_count": len(list), "sample_errors": samples})
	}
	start, end := errs[0].at, errs[0].at
	for _, e := range errs {
		start, end = minTime(start, e.at), maxTime(end, e.at)
	}
	return map[string]any{
		"developer_message_summary": fmt.Sprintf("%d meter events failed validation", len(errs)),
		"reason":                    map[string]any{"error_count": len(errs), "error_types": types},
		"validation_start":          v2Time(start.Truncate(time.Second)),
		"validation_end":            v2Time(end.Truncate(time.Second).Add(time.Second)),
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// relatedObject is the meter the event is about, nil for none.
func (e *coreEvent) relatedObject() any {
	if e.meterID == "" {
		return nil
	}
	return map[string]string{"id": e.meterID, "type": "billing.meter", "url": "/v1/billing/meters/" + e.meterID}
}

// full is the event as GET /v2/core/events/{id} answers it.
func (e *coreEvent) full() map[string]any {
	return map[string]any{
		"id":             e.id,
		"object":         "v2.core.event",
		"context":        nil,
		"created":        v2Time(e.created),
		"data":           e.data,
		"livemode":       false,
		"reason":         nil,
		"related_object": e.relatedObject(),
		"type":           e.typ,
	}
}

// thin is the thin event an event destination receives: no data, which the
// receiver fetches by id (Stripe's event destinations, thin events).
func (e *coreEvent) thin() map[string]any {
	return map[string]any{
		"id":             e.id,
		"object":         "v2.core.event",
		"type":           e.typ,
		"created":        v2Time(e.created),
		"livemode":       false,
		"context":        nil,
		"related_object": e.relatedObject(),
	}
}

// getCoreEvent serves GET /v2/core/events/{id}.
func (f *Fake) getCoreEvent(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r) {
		return
	}
	f.mu.Lock()
	ev := f.coreEvents[r.PathValue("id")]
	f.mu.Unlock()
	if ev == nil {
		(&apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "resource_missing",
			msg: "No such event: '" + r.PathValue("id") + "'"}).write(w)
		return
	}
	writeJSON(w, http.StatusOK, ev.full())
}
