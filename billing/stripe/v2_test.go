package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// clock is a clock that stands still until a test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// streamCharges is n single-event batches (what the worker sends on v2)
// served just before at, spread over seven customers, and what each
// customer should be billed for them.
func streamCharges(n int, at time.Time) ([]billing.Charge, map[string]int64) {
	charges := make([]billing.Charge, n)
	want := make(map[string]int64)
	for i := range charges {
		customer := fmt.Sprintf("cus_%d", i%7)
		bytes := int64(1 + (i*7919)%1_000_003)
		charges[i] = billing.Charge{Account: "stripe:" + customer, Batch: billing.Batch{
			ID: fmt.Sprintf("bafy-stream-%04d", i), Customer: "did:mailto:example.com:" + customer,
			Timestamp: at.Add(-30*time.Minute + time.Duration(i)*time.Millisecond), Bytes: bytes, Events: 1,
		}}
		want[customer] += bytes
	}
	return charges, want
}

// reportAll reports chunks of up to 100 charges from workers goroutines at
// once, as the worker's lanes do, and fails on any error.
func reportAll(t *testing.T, r *stripe.Reporter, charges []billing.Charge, workers int) {
	t.Helper()
	chunks := make(chan []billing.Charge)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range workers {
		wg.Go(func() {
			for chunk := range chunks {
				for i, err := range r.Report(context.Background(), chunk) {
					if err != nil {
						failed.Add(1)
						t.Errorf("batch %s: %v", chunk[i].Batch.ID, err)
					}
				}
			}
		})
	}
	for start := 0; start < len(charges); start += stripe.MaxStreamEvents {
		chunks <- charges[start:min(start+stripe.MaxStreamEvents, len(charges))]
	}
	close(chunks)
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
}

// checkBilled checks that Stripe holds exactly one event per charge, under
// the batch's identifier, and bills each customer exactly want.
func checkBilled(t *testing.T, fake *stripetest.Fake, charges []billing.Charge, want map[string]int64) {
	t.Helper()
	accepted := fake.Accepted()
	seen := make(map[string]bool, len(accepted))
	for _, ev := range accepted {
		if seen[ev.Identifier] {
			t.Fatalf("identifier %s accepted twice", ev.Identifier)
		}
		seen[ev.Identifier] = true
	}
	for _, c := range charges {
		if !seen[stripe.BatchIdentifier(c.Batch)] {
			t.Fatalf("batch %s never reached Stripe", c.Batch.ID)
		}
	}
	if len(accepted) != len(charges) {
		t.Fatalf("Stripe accepted %d events for %d charges", len(accepted), len(charges))
	}
	if got := fake.Totals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Stripe bills %v, want %v", got, want)
	}
}

// TestV2AcrossSessionExpiry sends 2,000 events on the stream from eight
// concurrent callers while sessions come due and expire: once the
// Reporter's own clock says a session is nearly over (it renews before
// Stripe refuses it), then once Stripe's clock passes expires_at while the
// Reporter thinks it fresh (Stripe answers 401 and the requests go again
// under a new session). Every event is billed once, with its value, under
// its batch's identifier; requests carry at most 100 events and number far
// fewer than the events; the callers share each session.
func TestV2AcrossSessionExpiry(t *testing.T) {
	fake := stripetest.New(t)
	stripeClock, localClock := newClock(), newClock()
	fake.SetNow(stripeClock.Now)
	fake.SetSessionLifetime(time.Minute)
	r := newReporter(t, fake.URL, stripe.APIV2)
	stripe.SetClock(r, localClock.Now)
	charges, want := streamCharges(2000, stripeClock.Now())

	reportAll(t, r, charges[:500], 8)
	// 50 s into a 1-minute session: the Reporter renews it (a quarter of
	// its life before the end, for so short a session) before Stripe would
	// refuse it.
	stripeClock.advance(50 * time.Second)
	localClock.advance(50 * time.Second)
	reportAll(t, r, charges[500:1000], 8)
	for i, req := range fake.StreamRequests() {
		if req.Status != http.StatusOK {
			t.Fatalf("stream request %d answered %d %s before any session expired on Stripe", i, req.Status, req.Code)
		}
	}
	// Stripe's clock passes the session's expiry; the Reporter's does not.
	stripeClock.advance(time.Minute)
	reportAll(t, r, charges[1000:], 8)

	checkBilled(t, fake, charges, want)
	var ok, expired int
	for _, req := range fake.StreamRequests() {
		if req.Events > stripe.MaxStreamEvents {
			t.Errorf("a stream request carried %d events", req.Events)
		}
		switch {
		case req.Status == http.StatusOK:
			ok++
		case req.Status == http.StatusUnauthorized && req.Code == "billing_meter_event_session_expired":
			expired++
		default:
			t.Errorf("stream request answered %d %s", req.Status, req.Code)
		}
	}
	if ok != 20 || expired == 0 || ok+expired >= len(charges)/20 {
		t.Fatalf("%d stream requests accepted, %d refused as expired, for %d events; want 20 accepted, some refused, fewer than %d in all",
			ok, expired, len(charges), len(charges)/20)
	}
	// One session at first, one renewed ahead of time, one after Stripe
	// refused the second: concurrent callers waited for one renewal each
	// time instead of each making their own.
	if n := fake.Requests(stripetest.SessionEndpoint); n != 3 {
		t.Fatalf("%d sessions created, want 3", n)
	}
}

// TestV2RetryCountsOnce: a stream request that fails, before or after
// Stripe recorded its events (a 500, a dropped connection, a 429), fails
// every charge in it as retryable; sending the same charges again, as the
// worker does, bills each event once. (Go's HTTP client may itself resend
// a request whose reused connection dropped before any answer, so Report
// calls and stream requests need not pair up.)
func TestV2RetryCountsOnce(t *testing.T) {
	fake := stripetest.New(t)
	faults := []stripetest.Fault{stripetest.ServerErrorAfter, stripetest.DropAfter, stripetest.DropBefore, stripetest.ServerError, stripetest.TooManyRequests}
	fake.SetStreamFault(func(n int, _ []stripetest.MeterEvent) stripetest.Fault {
		if n <= len(faults) {
			return faults[n-1]
		}
		return stripetest.None
	})
	r := newReporter(t, fake.URL, stripe.APIV2)
	charges, want := streamCharges(100, time.Now())
	failed := 0
	for done := false; !done; {
		done = true
		for i, err := range r.Report(context.Background(), charges) {
			if err == nil {
				continue
			}
			done = false
			var re *billing.ReportError
			if !errors.As(err, &re) || !re.Retryable {
				t.Fatalf("charge %d: %v; want a retryable ReportError", i, err)
			}
		}
		if !done {
			if failed++; failed > len(faults) {
				t.Fatalf("still failing after %d calls", failed)
			}
		}
	}
	checkBilled(t, fake, charges, want)
	var statuses []int
	for _, req := range fake.StreamRequests() {
		statuses = append(statuses, req.Status)
	}
	if fmt.Sprint(statuses) != "[500 0 0 500 429 200]" || failed == 0 {
		t.Fatalf("stream requests answered %v after %d failed calls; want every fault, then success", statuses, failed)
	}
}

// TestV2SendsTheEvents checks what the stream carries for each charge (the
// batch's identifier, customer, value and timestamp), that a call of more
// charges than one request takes is split, and that a charge refused before
// sending leaves the others to go.
func TestV2SendsTheEvents(t *testing.T) {
	fake := stripetest.New(t)
	r := newReporter(t, fake.URL, stripe.APIV2)
	charges, want := streamCharges(250, time.Now())
	charges[7].Batch.Resend = 2
	bad := billing.Charge{Account: "stripe:acct_notacustomer", Batch: testBatch("bafy-bad-account")}
	errs := r.Report(context.Background(), append(charges, bad))
	for i, err := range errs[:250] {
		if err != nil {
			t.Fatalf("charge %d: %v", i, err)
		}
	}
	var re *billing.ReportError
	if !errors.As(errs[250], &re) || re.Retryable || !strings.Contains(re.Reason, "not a Stripe customer") {
		t.Fatalf("charge to a non-customer: %v", errs[250])
	}
	checkBilled(t, fake, charges, want)
	for _, c := range charges {
		ev := fake.Events()[stripe.BatchIdentifier(c.Batch)]
		if !ev.Stream || ev.EventName != "egress-test" || "stripe:"+ev.Customer != c.Account || ev.Value != c.Batch.Bytes || ev.Timestamp != c.Batch.Timestamp.Unix() {
			t.Fatalf("batch %s: Stripe has %+v", c.Batch.ID, ev)
		}
	}
	if _, ok := fake.Events()[charges[7].Batch.ID+"-r2"]; !ok {
		t.Fatal("the resent batch did not go under its resend identifier")
	}
	var sizes []int
	for _, req := range fake.StreamRequests() {
		sizes = append(sizes, req.Events)
	}
	if fmt.Sprint(sizes) != "[100 100 50]" {
		t.Fatalf("stream requests of %v events, want [100 100 50]", sizes)
	}
}

// TestV2StreamErrors checks how Stripe's answers to the session and stream
// requests become each charge's error.
func TestV2StreamErrors(t *testing.T) {
	const expired = `{"error":{"type":"temporary_session_expired","code":"billing_meter_event_session_expired","message":"expired"}}`
	tests := []struct {
		name string
		// session and stream answer the n-th request (from 1).
		session, stream func(n int) (int, string)
		// retry and reason are each charge's want; "" reason is success.
		retry    []bool
		reason   []string
		sessions int
		streams  int
	}{
		{
			name:     "accepted",
			stream:   func(int) (int, string) { return 200, `{}` },
			retry:    []bool{false, false, false},
			reason:   []string{"", "", ""},
			sessions: 1, streams: 1,
		},
		{
			name: "secret key refused",
			session: func(int) (int, string) {
				return 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`
			},
			retry:    []bool{false, false, false},
			reason:   []string{"creating a meter event session", "Invalid API Key", "401"},
			sessions: 1, streams: 0,
		},
		{
			name:     "session creation fails",
			session:  func(int) (int, string) { return 503, `{"error":{"type":"api_error","message":"down"}}` },
			retry:    []bool{true, true, true},
			reason:   []string{"creating a meter event session", "down", "503"},
			sessions: 1, streams: 0,
		},
		{
			name: "expired, then accepted under a new session",
			stream: func(n int) (int, string) {
				if n == 1 {
					return 401, expired
				}
				return 200, `{}`
			},
			retry:    []bool{false, false, false},
			reason:   []string{"", "", ""},
			sessions: 2, streams: 2,
		},
		{
			name:     "refused under a new session too",
			stream:   func(int) (int, string) { return 401, expired },
			retry:    []bool{true, true, true},
			reason:   []string{"new meter event session was refused too", "billing_meter_event_session_expired", "401"},
			sessions: 2, streams: 2,
		},
		{
			name: "rate limited",
			stream: func(int) (int, string) {
				return 429, `{"error":{"type":"rate_limit","code":"rate_limit","message":"slow down"}}`
			},
			retry:    []bool{true, true, true},
			reason:   []string{"429", "slow down", "rate_limit"},
			sessions: 1, streams: 1,
		},
		{
			name:     "server error",
			stream:   func(int) (int, string) { return 500, `{"error":{"type":"api_error","message":"oops"}}` },
			retry:    []bool{true, true, true},
			reason:   []string{"500", "oops", "oops"},
			sessions: 1, streams: 1,
		},
		{
			name: "request refused",
			stream: func(int) (int, string) {
				return 400, `{"error":{"type":"invalid_request_error","message":"bad request"}}`
			},
			retry:    []bool{false, false, false},
			reason:   []string{"bad request", "bad request", "bad request"},
			sessions: 1, streams: 1,
		},
		{
			name: "one event refused",
			stream: func(int) (int, string) {
				return 400, `{"error":{"type":"invalid_request_error","param":"events[1].timestamp","message":"Invalid date-time"}}`
			},
			retry:    []bool{true, false, true},
			reason:   []string{"another event in it (events[1].timestamp)", "Invalid date-time", "another event"},
			sessions: 1, streams: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sessions, streams atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				io.Copy(io.Discard, req.Body)
				w.Header().Set("Content-Type", "application/json")
				switch req.URL.Path {
				case "/v2/billing/meter_event_session":
					n := int(sessions.Add(1))
					if tt.session != nil {
						status, body := tt.session(n)
						w.WriteHeader(status)
						io.WriteString(w, body)
						return
					}
					now := time.Now().UTC()
					fmt.Fprintf(w, `{"object":"v2.billing.meter_event_session","authentication_token":"tok_%d","created":%q,"expires_at":%q}`,
						n, now.Format(time.RFC3339), now.Add(15*time.Minute).Format(time.RFC3339))
				case "/v2/billing/meter_event_stream":
					n := int(streams.Add(1))
					if want := fmt.Sprintf("Bearer tok_%d", sessions.Load()); req.Header.Get("Authorization") != want {
						t.Errorf("stream request %d authenticated with %q, want %q", n, req.Header.Get("Authorization"), want)
					}
					status, body := tt.stream(n)
					w.WriteHeader(status)
					io.WriteString(w, body)
				default:
					t.Errorf("unexpected request %s %s", req.Method, req.URL.Path)
					w.WriteHeader(http.StatusNotFound)
				}
			}))
			defer srv.Close()
			charges, _ := streamCharges(3, time.Now())
			errs := newReporter(t, srv.URL, stripe.APIV2).Report(context.Background(), charges)
			for i, err := range errs {
				if tt.reason[i] == "" {
					if err != nil {
						t.Errorf("charge %d: %v, want success", i, err)
					}
					continue
				}
				var re *billing.ReportError
				if !errors.As(err, &re) || re.Retryable != tt.retry[i] || !strings.Contains(re.Reason, tt.reason[i]) {
					t.Errorf("charge %d: %#v; want retryable %v, reason containing %q", i, err, tt.retry[i], tt.reason[i])
				}
			}
			if int(sessions.Load()) != tt.sessions || int(streams.Load()) != tt.streams {
				t.Errorf("%d session and %d stream requests, want %d and %d", sessions.Load(), streams.Load(), tt.sessions, tt.streams)
			}
		})
	}
}
