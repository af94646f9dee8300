package stripe_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
)

const webhookSecret = "whsec_test_egressd"

// rejections is a ledger that notes what the webhook rejects.
type rejections struct {
	mu  sync.Mutex
	got []string // "<id> <resend>: <reason>"
}

func (r *rejections) Reject(_ context.Context, id string, resend int, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%s %d: %s", id, resend, reason))
	return nil
}

func (r *rejections) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.got...)
	sort.Strings(out)
	return out
}

func newWebhook(t *testing.T, url string, ledger stripe.Rejecter) *stripe.Webhook {
	t.Helper()
	h, err := stripe.NewWebhook(stripe.WebhookConfig{Secret: webhookSecret, Key: stripetest.Key, URL: url, Ledger: ledger,
		Timeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestWebhookRejectsTheBatch: Stripe accepts meter events to an unknown
// customer and reports them later; the webhook reads each sampled
// identifier back into its batch ID and resend and rejects that batch, on
// either API.
func TestWebhookRejectsTheBatch(t *testing.T) {
	for _, api := range stripe.APIs {
		t.Run(api, func(t *testing.T) {
			fake := stripetest.New(t)
			fake.AddCustomer("cus_alice")
			ledger := &rejections{}
			hook := httptest.NewServer(newWebhook(t, fake.URL, ledger))
			defer hook.Close()
			fake.SetWebhook(hook.URL, webhookSecret)

			r := newReporter(t, fake.URL, api)
			billed, first, resent := testBatch("bafy-billed"), testBatch("bafy-ghost"), testBatch("bafy-ghost-again")
			resent.Resend = 2
			for _, c := range []billing.Charge{{Account: "stripe:cus_alice", Batch: billed}, {Account: "stripe:cus_ghost", Batch: first}, {Account: "stripe:cus_ghost", Batch: resent}} {
				if err := reportOne(t, r, c.Account, c.Batch); err != nil {
					t.Fatal(err)
				}
			}
			fake.ReportErrors()
			for _, d := range fake.Deliveries() {
				if d.Status != http.StatusOK {
					t.Fatalf("delivery %+v", d)
				}
			}
			got := ledger.list()
			if len(got) != 2 || !strings.HasPrefix(got[0], "bafy-ghost 0: meter_event_customer_not_found: ") ||
				!strings.HasPrefix(got[1], "bafy-ghost-again 2: meter_event_customer_not_found: ") {
				t.Fatalf("rejected %q; want bafy-ghost (resend 0) and bafy-ghost-again (resend 2)", got)
			}
		})
	}
}

// TestWebhookFetchFailureIsRetried: when the full event cannot be fetched
// because the connection to Stripe drops, the delivery is answered 500, so
// that Stripe delivers it again, and nothing panics.
func TestWebhookFetchFailureIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	defer ln.Close()
	ledger := &rejections{}
	h := newWebhook(t, "http://"+ln.Addr().String(), ledger)
	payload := []byte(`{"id":"evt_test_1","object":"v2.core.event","type":"` + stripe.EventErrorReportTriggered + `"}`)
	req := httptest.NewRequest(http.MethodPost, "/stripe/webhook", strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", stripetest.Signature(payload, webhookSecret, time.Now()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || len(ledger.list()) != 0 {
		t.Fatalf("answered %d, rejected %v; want 500 and nothing", rec.Code, ledger.list())
	}
}
