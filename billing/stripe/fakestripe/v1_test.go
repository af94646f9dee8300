package fakestripe_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing/stripe/fakestripe"
)

func TestMeterEventIsRecorded(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	c := newClients(t, f)
	ts := clock.Now().Add(-time.Hour)
	got, err := c.events.New(meterEvent("egress", "bafy-1", "cus_alice", 2048, ts))
	if err != nil {
		t.Fatal(err)
	}
	if got.Identifier != "bafy-1" || got.EventName != "egress" || got.Timestamp != ts.Unix() ||
		got.Payload["value"] != "2048" || got.Created != clock.Now().Unix() {
		t.Fatalf("answer %+v", got)
	}
	ev := f.Events()["bafy-1"]
	if ev.Customer != "cus_alice" || ev.Value != 2048 || !ev.Received.Equal(clock.Now()) || ev.Stream {
		t.Fatalf("recorded %+v", ev)
	}
	if f.Totals()["cus_alice"] != 2048 || f.Calls() != 1 || f.Requests(fakestripe.MeterEventsEndpoint) != 1 {
		t.Fatalf("totals %v, %d calls", f.Totals(), f.Calls())
	}
}

// TestIdentifierIsCountedOnce: a repeated idempotency key replays the first
// answer; the same identifier under a new key is refused as Stripe refuses
// it (400, its message, no code, Stripe-Should-Retry: false) and not counted
// again, until the dedup window has passed.
func TestIdentifierIsCountedOnce(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	c := newClients(t, f)
	first := meterEvent("egress", "bafy-dup", "cus_alice", 100, clock.Now())
	first.SetIdempotencyKey("key-1")
	if _, err := c.events.New(first); err != nil {
		t.Fatal(err)
	}

	replay := meterEvent("egress", "bafy-dup", "cus_alice", 100, clock.Now())
	replay.SetIdempotencyKey("key-1")
	got, err := c.events.New(replay)
	if err != nil || got.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %v, headers %v", err, got.LastResponse.Header)
	}

	changed := meterEvent("egress", "bafy-dup", "cus_alice", 999, clock.Now())
	changed.SetIdempotencyKey("key-1")
	_, err = c.events.New(changed)
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeIdempotency {
		t.Fatalf("same key, other parameters: %+v", se)
	}

	again := meterEvent("egress", "bafy-dup", "cus_alice", 100, clock.Now())
	again.SetIdempotencyKey("key-2")
	_, err = c.events.New(again)
	se := stripeError(t, err)
	if se.HTTPStatusCode != 400 || se.Type != stripe.ErrorTypeInvalidRequest || se.Code != "" ||
		se.Msg != "An event already exists with identifier bafy-dup." ||
		se.LastResponse.Header.Get("Stripe-Should-Retry") != "false" {
		t.Fatalf("same identifier, new key: %+v", se)
	}
	if f.Totals()["cus_alice"] != 100 || len(f.Accepted()) != 1 {
		t.Fatalf("after repeats: totals %v, %d accepted", f.Totals(), len(f.Accepted()))
	}

	// Stripe promises uniqueness for at least 24 hours, no more.
	clock.advance(24 * time.Hour)
	later := meterEvent("egress", "bafy-dup", "cus_alice", 100, clock.Now())
	later.SetIdempotencyKey("key-3")
	if _, err := c.events.New(later); err != nil {
		t.Fatal(err)
	}
	if f.Totals()["cus_alice"] != 200 || len(f.Accepted()) != 2 {
		t.Fatalf("a day later: totals %v, %d accepted; want the re-send counted", f.Totals(), len(f.Accepted()))
	}
}

func TestTimestampWindow(t *testing.T) {
	f := newFake(t)
	clock := setClock(f)
	c := newClients(t, f)
	now := clock.Now()
	tests := []struct {
		name string
		ts   time.Time
		code stripe.ErrorCode
	}{
		{"35 days ago", now.AddDate(0, 0, -35), ""},
		{"35 days and a second ago", now.AddDate(0, 0, -35).Add(-time.Second), "timestamp_too_far_in_past"},
		{"5 minutes ahead", now.Add(5 * time.Minute), ""},
		{"5 minutes and a second ahead", now.Add(5*time.Minute + time.Second), "timestamp_in_future"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.events.New(meterEvent("egress", "ts-"+string(rune('a'+i)), "cus_alice", 1, tc.ts))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Code != tc.code {
				t.Fatalf("got %+v, want 400 %s", se, tc.code)
			}
		})
	}
}

func TestValueRules(t *testing.T) {
	f := newFake(t)
	c := newClients(t, f)
	tests := []struct {
		value string
		code  stripe.ErrorCode
	}{
		{"1", ""},
		{"999999999999999", ""},
		{"-40", ""}, // a correction, which Stripe takes
		{"1000000000000000", "meter_event_value_too_many_digits"},
		{"1.5", "meter_event_invalid_value"},
		{"12 bytes", "meter_event_invalid_value"},
		{"", "meter_event_invalid_value"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			p := meterEvent("egress", "value-"+tc.value, "cus_v", 0, time.Now())
			p.Payload["value"] = tc.value
			_, err := c.events.New(p)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if se := stripeError(t, err); se.HTTPStatusCode != 400 || se.Code != tc.code {
				t.Fatalf("got %+v, want 400 %s", se, tc.code)
			}
		})
	}
	if got := f.Totals()["cus_v"]; got != 999999999999999+1-40 {
		t.Fatalf("total %d", got)
	}
}

// TestEventNameNeedsMeter: once meters are set up, v1 refuses an event name
// no meter has.
func TestEventNameNeedsMeter(t *testing.T) {
	f := newFake(t)
	f.AddMeter("egress")
	c := newClients(t, f)
	_, err := c.events.New(meterEvent("egres", "typo", "cus_alice", 1, time.Now()))
	if se := stripeError(t, err); se.HTTPStatusCode != 400 || !strings.Contains(se.Msg, "No active meter") {
		t.Fatalf("got %+v", se)
	}
	if _, err := c.events.New(meterEvent("egress", "right", "cus_alice", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
}

// TestOneCallPerCustomerAndMeter: while a call for a customer and meter is
// in flight, another for the same pair is answered 429 rate_limit, and calls
// for another customer or another meter are not.
func TestOneCallPerCustomerAndMeter(t *testing.T) {
	f := newFake(t)
	f.SetDelay(300 * time.Millisecond)
	c := newClients(t, f)

	held := make(chan error, 1)
	go func() {
		_, err := c.events.New(meterEvent("egress", "held", "cus_a", 1, time.Now()))
		held <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.MaxInFlightByCustomer()["cus_a"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first call never arrived")
		}
		time.Sleep(time.Millisecond)
	}

	var wg sync.WaitGroup
	errs := make(map[string]error)
	var mu sync.Mutex
	for name, p := range map[string]*stripe.BillingMeterEventParams{
		"same customer and meter": meterEvent("egress", "second", "cus_a", 1, time.Now()),
		"other customer":          meterEvent("egress", "other-customer", "cus_b", 1, time.Now()),
		"other meter":             meterEvent("egress-other", "other-meter", "cus_a", 1, time.Now()),
	} {
		wg.Go(func() {
			_, err := c.events.New(p)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	se := stripeError(t, errs["same customer and meter"])
	if se.HTTPStatusCode != 429 || se.Code != stripe.ErrorCodeRateLimit {
		t.Fatalf("second call for the pair: %+v", se)
	}
	if errs["other customer"] != nil || errs["other meter"] != nil {
		t.Fatalf("calls for other pairs: %v", errs)
	}
	limited := f.RateLimited()
	if len(limited) != 1 || limited[0].Customer != "cus_a" || limited[0].EventName != "egress" || limited[0].Injected {
		t.Fatalf("429s: %+v", limited)
	}
	if got := f.MaxInFlightByCustomer(); got["cus_a"] < 2 || got["cus_b"] != 1 {
		t.Fatalf("most calls in flight by customer: %v", got)
	}
	if _, ok := f.Events()["second"]; ok || f.Totals()["cus_a"] != 2 {
		t.Fatalf("the refused call was recorded: %v", f.Totals())
	}
}

func TestInjectedFaultsAreListed(t *testing.T) {
	f := newFake(t)
	f.SetFault(func(n int, _ fakestripe.MeterEvent) fakestripe.Fault {
		if n == 1 {
			return fakestripe.TooManyRequests
		}
		return fakestripe.None
	})
	c := newClients(t, f)
	_, err := c.events.New(meterEvent("egress", "f", "cus_a", 1, time.Now()))
	if se := stripeError(t, err); se.HTTPStatusCode != 429 {
		t.Fatalf("got %+v", se)
	}
	if _, err := c.events.New(meterEvent("egress", "f", "cus_a", 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if l := f.RateLimited(); len(l) != 1 || !l[0].Injected {
		t.Fatalf("429s: %+v", l)
	}
}
