package stripe_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/internal/testenv"
)

// exchange is one request the recording proxy passed to stripe-mock.
type exchange struct {
	path, auth, idempotencyKey string
	form                       url.Values
	status                     int
}

// recordingProxy forwards to target and remembers every exchange.
type recordingProxy struct {
	mu        sync.Mutex
	exchanges []exchange
}

func (p *recordingProxy) handler(t *testing.T, target string) http.Handler {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(rec, r)
		p.mu.Lock()
		p.exchanges = append(p.exchanges, exchange{r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), form, rec.status})
		p.mu.Unlock()
	})
}

func (p *recordingProxy) byIdentifier() map[string]exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]exchange)
	for _, e := range p.exchanges {
		out[e.form.Get("identifier")] = e
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// TestBatchReachesStripeMock sends v1 batches, a first send and a resend,
// to stripe-mock, which checks every request against Stripe's OpenAPI spec,
// and checks what it received: one meter event per batch carrying the
// batch's total, its timestamp and its identifier.
func TestBatchReachesStripeMock(t *testing.T) {
	stripeURL := testenv.URL(t, testenv.Stripe)
	testenv.Reachable(t, stripeURL)
	proxy := &recordingProxy{}
	proxySrv := httptest.NewServer(proxy.handler(t, stripeURL))
	defer proxySrv.Close()
	reporter, err := stripe.New(stripe.Config{Key: "sk_test_egressd", URL: proxySrv.URL, EventName: "egress"})
	must(t, err)

	servedAt := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	first := billing.Batch{ID: "bafyreihk7626rzxqqzninetfhkmormhzwtk7yf47ec6wzees2ys4lb4xja", Customer: "did:mailto:example.com:alice",
		Timestamp: servedAt, Bytes: 1048576 + 2048 + 7, Events: 3}
	resent := first
	resent.Resend = 1
	for _, b := range []billing.Batch{first, resent} {
		if errs := reporter.Report(context.Background(), []billing.Charge{{Account: "stripe:cus_alice", Batch: b}}); len(errs) != 1 || errs[0] != nil {
			t.Fatalf("Report(resend %d) = %v", b.Resend, errs)
		}
	}
	sent := proxy.byIdentifier()
	for _, id := range []string{first.ID, first.ID + "-r1"} {
		ex, ok := sent[id]
		if !ok {
			t.Fatalf("no meter event with identifier %s; sent %v", id, sent)
		}
		if ex.status != http.StatusOK {
			t.Errorf("stripe-mock answered %d to %s: the request is not valid for Stripe", ex.status, id)
		}
		f := ex.form
		if ex.path != "/v1/billing/meter_events" || ex.auth != "Bearer sk_test_egressd" || f.Get("event_name") != "egress" ||
			f.Get("payload[stripe_customer_id]") != "cus_alice" || f.Get("payload[value]") != "1050631" ||
			f.Get("timestamp") != strconv.FormatInt(servedAt.Unix(), 10) {
			t.Errorf("meter event %s: %s %s %v", id, ex.path, ex.auth, f)
		}
		if want := stripe.IdempotencyKey(id, "egress", "cus_alice", "1050631", servedAt.Unix()); ex.idempotencyKey != want {
			t.Errorf("Idempotency-Key %q, want %q", ex.idempotencyKey, want)
		}
	}
	if len(sent) != 2 {
		t.Fatalf("%d meter events sent, want 2", len(sent))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
