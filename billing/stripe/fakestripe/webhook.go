package fakestripe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Delivery is one thin event the fake POSTed to the webhook.
type Delivery struct {
	EventID string
	Type    string
	// Status is the destination's answer, 0 if it gave none (Err says why).
	Status int
	Err    error
}

// SetWebhook makes ReportErrors POST each new event's thin event to url,
// signed with secret (a whsec_... signing secret), as a Stripe event
// destination does. An empty url stops deliveries.
func (f *Fake) SetWebhook(url, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.webhookURL, f.secret = url, secret
}

// SetAutoReport makes the fake call ReportErrors by itself d after it finds
// an error that no report has covered yet, as Stripe reports some time after
// accepting the events. Zero (the default) leaves reports to ReportErrors.
func (f *Fake) SetAutoReport(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reportDelay = d
	if d > 0 && len(f.pending) > 0 && f.reportTimer == nil && !f.closed {
		f.reportTimer = time.AfterFunc(d, func() { f.ReportErrors() })
	}
}

// Deliveries returns the webhook deliveries made so far, in order.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivery(nil), f.deliveries...)
}

// deliver POSTs ev's thin event to url. The fake does not retry a failed
// delivery (Stripe does, for days): the test sees the failure in Deliveries.
func (f *Fake) deliver(url, secret string, ev *coreEvent) {
	payload, _ := json.Marshal(ev.thin())
	d := Delivery{EventID: ev.id, Type: ev.typ}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err == nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
		// Signed at the real time, not the fake's clock: a receiver
		// compares the signature's time with its own clock (5 minutes'
		// tolerance), whatever time a test has set for Stripe.
		req.Header.Set("Stripe-Signature", Signature(payload, secret, time.Now()))
		var res *http.Response
		if res, err = f.webhook.Do(req); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			d.Status = res.StatusCode
		}
	}
	d.Err = err
	f.mu.Lock()
	f.deliveries = append(f.deliveries, d)
	f.mu.Unlock()
}

// Signature is the Stripe-Signature header of payload sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed by
// secret>", the scheme stripe-go v81's webhook.ValidatePayload checks (it
// also rejects a t more than 5 minutes old by the real clock, unless told
// to ignore the tolerance).
func Signature(payload []byte, secret string, t time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", t.Unix())
	mac.Write(payload)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(mac.Sum(nil)))
}
