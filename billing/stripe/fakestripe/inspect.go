package fakestripe

import "time"

// Events returns the meter events the fake holds, by identifier: for an
// identifier sent again after the dedup window, the later event. Rejected
// and cancelled events are included, with Error or Cancelled set.
func (f *Fake) Events() map[string]MeterEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]MeterEvent, len(f.byIdentifier))
	for k, v := range f.byIdentifier {
		out[k] = *v
	}
	return out
}

// Accepted returns every meter event the fake accepted, in order, including
// an identifier accepted twice because its dedup window had passed.
func (f *Fake) Accepted() []MeterEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]MeterEvent, len(f.accepted))
	for i, ev := range f.accepted {
		out[i] = *ev
	}
	return out
}

// Totals returns, by customer, the sum of the values Stripe would bill: all
// accepted meter events, over all meters, less those rejected after being
// accepted and those cancelled.
func (f *Fake) Totals() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int64)
	for _, ev := range f.accepted {
		if billed(ev) {
			out[ev.Customer] += ev.Value
		}
	}
	return out
}

// Calls is the number of v1 meter event requests received, failed ones
// included.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Requests is the number of requests received by endpoint (one of the
// ...Endpoint constants), failed ones included.
func (f *Fake) Requests(endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[endpoint]
}

// RateLimited returns every 429 the fake answered, in order.
func (f *Fake) RateLimited() []RateLimited {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]RateLimited(nil), f.rateLimited...)
}

// MaxInFlightPerCustomer is the most v1 meter event requests for one
// customer that were ever open at the same time, refused ones included.
func (f *Fake) MaxInFlightPerCustomer() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxCustomer
}

// MaxInFlightByCustomer is MaxInFlightPerCustomer for each customer.
func (f *Fake) MaxInFlightByCustomer() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.maxByCustomer))
	for k, v := range f.maxByCustomer {
		out[k] = v
	}
	return out
}

// MaxInFlight is the most v1 meter event requests ever open at the same
// time.
func (f *Fake) MaxInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

// Arrivals returns when each v1 meter event request arrived (by the real
// clock), in order.
func (f *Fake) Arrivals() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.arrivals...)
}
