package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	stripego "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/webhook"

	"github.com/egressd/egressd/billing"
)

// The thin event types by which Stripe reports meter events it accepted and
// later rejected (an unknown customer, no meter for the event name).
const (
	EventErrorReportTriggered = "v1.billing.meter.error_report_triggered"
	EventNoMeterFound         = "v1.billing.meter.no_meter_found"
)

// MaxWebhookBody bounds a delivery's body: a thin event is a few hundred
// bytes, and the signature can only be checked after reading all of it.
const MaxWebhookBody = 64 << 10

// seenEvents bounds the event ids a Webhook remembers having handled, so
// that a redelivery is neither logged nor counted twice.
const seenEvents = 4096

// Rejecter is what the webhook needs of the ledger: billing.Ledger
// satisfies it.
type Rejecter interface {
	// Reject marks the batch id (and its events) rejected with reason,
	// unless a later resend replaced the identifier; billing.ErrNotFound
	// if there is no such batch.
	Reject(ctx context.Context, id string, resend int, reason string) error
}

// WebhookConfig configures a Webhook. Secret, Key and Ledger are required.
type WebhookConfig struct {
	// Secret is the event destination's signing secret (whsec_...).
	Secret string
	// Key is the Stripe secret key with which full events are fetched.
	Key string
	// URL is the API base URL; empty is https://api.stripe.com.
	URL string
	// Ledger receives the rejections.
	Ledger Rejecter
	// Timeout bounds the fetch of one event; zero is DefaultTimeout.
	Timeout time.Duration
	// Logger receives one warning per error report; nil is slog.Default().
	Logger *slog.Logger
	// Registry receives egressd_stripe_rejections_total; nil makes a private one.
	Registry *prometheus.Registry
}

// Webhook is the http.Handler of a Stripe event destination that sends thin
// events. Stripe answers a meter event 200 and validates it later: when it
// rejects some, it sends an error report naming a sample of their
// identifiers. The handler checks the delivery's signature, fetches the full
// event, and marks the batch of each sampled identifier (its events with it)
// rejected with Stripe's code and message. Stripe sends samples, not every identifier: the
// rest show only in its error counts (logged) and in reconciliation.
type Webhook struct {
	secret string
	// api fetches full events with key.
	api        v2Host
	key        string
	ledger     Rejecter
	timeout    time.Duration
	log        *slog.Logger
	rejections *prometheus.CounterVec
	seen       *lru.Cache[string, struct{}]
}

// NewWebhook builds a Webhook from cfg.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	switch {
	case cfg.Secret == "":
		return nil, errors.New("stripe webhook: no signing secret")
	case cfg.Key == "":
		return nil, errors.New("stripe webhook: no secret key to fetch events with")
	case cfg.Ledger == nil:
		return nil, errors.New("stripe webhook: no ledger")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	backendCfg := &stripego.BackendConfig{
		HTTPClient: &http.Client{Timeout: cfg.Timeout},
		// A failed fetch answers Stripe 500, and Stripe delivers again.
		MaxNetworkRetries: stripego.Int64(0),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
	}
	if cfg.URL != "" {
		backendCfg.URL = stripego.String(cfg.URL)
	}
	api, err := newV2Host(stripego.APIBackend, backendCfg)
	if err != nil {
		return nil, fmt.Errorf("stripe webhook: %w", err)
	}
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "egressd_stripe_rejections_total",
		Help: "Meter events Stripe accepted and later rejected, by Stripe's error code, as its error reports count them (every rejected event, sampled or not).",
	}, []string{"code"})
	if err := cfg.Registry.Register(rejections); err != nil {
		return nil, fmt.Errorf("registering the webhook's metrics: %w", err)
	}
	seen, _ := lru.New[string, struct{}](seenEvents)
	return &Webhook{
		secret:     cfg.Secret,
		api:        api,
		key:        cfg.Key,
		ledger:     cfg.Ledger,
		timeout:    cfg.Timeout,
		log:        cfg.Logger,
		rejections: rejections,
		seen:       seen,
	}, nil
}

// thinEvent is what a delivery carries: which event, and of what type.
type thinEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// errorReport is the data of a meter error report, as much as is used.
type errorReport struct {
	Data struct {
		Reason struct {
			ErrorCount int `json:"error_count"`
			ErrorTypes []struct {
				Code         string `json:"code"`
				ErrorCount   int    `json:"error_count"`
				SampleErrors []struct {
					ErrorMessage string `json:"error_message"`
					Request      struct {
						Identifier string `json:"identifier"`
					} `json:"request"`
				} `json:"sample_errors"`
			} `json:"error_types"`
		} `json:"reason"`
	} `json:"data"`
}

// ServeHTTP answers 400 to a delivery without a valid signature, 200 to
// one handled or ignored, and 500 when the event could not be fetched or
// the ledger not written, so that Stripe delivers it again.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	// The signature covers the body and a timestamp within 5 minutes, so
	// a forged or replayed-late delivery never reaches the ledger.
	if err := webhook.ValidatePayload(payload, r.Header.Get("Stripe-Signature"), h.secret); err != nil {
		h.log.Warn("stripe webhook: delivery refused", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "invalid Stripe-Signature", http.StatusBadRequest)
		return
	}
	var ev thinEvent
	if err := json.Unmarshal(payload, &ev); err != nil || ev.ID == "" {
		http.Error(w, "not a thin event", http.StatusBadRequest)
		return
	}
	if ev.Type != EventErrorReportTriggered && ev.Type != EventNoMeterFound {
		// Other events the destination may be subscribed to are not ours.
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.seen.Contains(ev.ID) {
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if err := h.handle(ctx, ev); err != nil {
		h.log.Error("stripe webhook: error report not handled; Stripe will deliver it again", "event", ev.ID, "type", ev.Type, "err", err)
		http.Error(w, "not handled, try again", http.StatusInternalServerError)
		return
	}
	h.seen.Add(ev.ID, struct{}{})
	w.WriteHeader(http.StatusOK)
}

// handle fetches the full event and marks each sampled identifier's batch
// rejected: an identifier is the batch ID, with its resend after a redrive. Rejecting is idempotent, so a report handled in part and
// delivered again is simply handled again.
func (h *Webhook) handle(ctx context.Context, ev thinEvent) error {
	answer, err := h.api.call(ctx, http.MethodGet, "/v2/core/events/"+url.PathEscape(ev.ID), h.key, nil)
	if err != nil {
		return fmt.Errorf("fetching event %s: %w", ev.ID, err)
	}
	var report errorReport
	if err := json.Unmarshal(answer, &report); err != nil {
		return fmt.Errorf("reading event %s: %w", ev.ID, err)
	}
	var (
		codes             []string
		marked, unmatched int
		unmatchedSamples  []string
	)
	for _, et := range report.Data.Reason.ErrorTypes {
		codes = append(codes, fmt.Sprintf("%s=%d", et.Code, et.ErrorCount))
		for _, s := range et.SampleErrors {
			id, resend, ok := batchOf(s.Request.Identifier)
			reason := et.Code + ": " + s.ErrorMessage
			if ok {
				err = h.ledger.Reject(ctx, id, resend, reason)
			}
			if !ok || errors.Is(err, billing.ErrNotFound) {
				// Not an identifier egressd sent (another integration on
				// the same account), or one too long to have been a batch ID.
				unmatched++
				unmatchedSamples = append(unmatchedSamples, s.Request.Identifier)
				continue
			}
			if err != nil {
				return fmt.Errorf("rejecting batch %s: %w", id, err)
			}
			marked++
		}
	}
	for _, et := range report.Data.Reason.ErrorTypes {
		h.rejections.WithLabelValues(et.Code).Add(float64(et.ErrorCount))
	}
	h.log.Warn("stripe rejected meter events it had accepted; their sampled batches are now rejected",
		"event", ev.ID, "type", ev.Type, "errors", report.Data.Reason.ErrorCount, "codes", strings.Join(codes, ","),
		"marked", marked, "unmatched", unmatched, "unmatched_identifiers", unmatchedSamples)
	return nil
}
