package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing"
)

// What reconciliation sends to Stripe to mend a drift: corrections of
// under-reports and cancels of over-reports.

// correct sends the correction of an under-reported hour.
func (r *reconciler) correct(ctx context.Context, rep *ReconcileReport, h *ReconcileHour, stripeCustomer string) {
	missing := -h.Drift
	h.Status, h.Unmended = Unmended, h.Drift
	// The last second of the hour that is not in the future: the latest
	// timestamp Stripe will sum into the hour.
	ts := h.Hour.Add(time.Hour - time.Second)
	if ts.After(r.now) {
		ts = r.now
	}
	switch {
	case ts.Before(r.now.AddDate(0, 0, -correctionDays).Add(correctionMargin)):
		h.Reason = fmt.Sprintf("Stripe bills %d bytes less than the ledger reported, and takes no meter event for an hour more than %d days old", missing, correctionDays)
		return
	case missing > MaxValue:
		h.Reason = fmt.Sprintf("Stripe bills %d bytes less than the ledger reported, more than one meter event can carry (%d)", missing, MaxValue)
		return
	}
	id := CorrectionIdentifier(r.eventName, stripeCustomer, h.Hour, h.Ledger, h.Stripe)
	a := ReconcileAction{Kind: "correction", Customer: h.Customer, Hour: h.Hour, Identifier: id, Value: missing}
	params := &stripego.BillingMeterEventParams{
		EventName:  stripego.String(r.eventName),
		Identifier: stripego.String(id),
		Payload:    map[string]string{"stripe_customer_id": stripeCustomer, "value": strconv.FormatInt(missing, 10)},
		Timestamp:  stripego.Int64(ts.Unix()),
	}
	params.Context = ctx
	err := send(ctx, func() error { _, err := r.events.New(params); return err })
	var se *stripego.Error
	switch {
	case err == nil:
		a.Done, a.Result = true, "sent"
	case errors.As(err, &se) && alreadyCounted(se):
		a.Done, a.Result = true, "already at Stripe: sent by an earlier run, not yet in Stripe's summary"
	default:
		a.Result = "failed: " + err.Error()
		h.Reason = fmt.Sprintf("Stripe bills %d bytes less than the ledger reported; the correction failed: %v", missing, err)
	}
	rep.Actions = append(rep.Actions, a)
	if a.Done {
		h.Status, h.Unmended = Mended, 0
	}
}

// cancel cancels, of an over-reported hour, the meter events of batches the
// ledger holds as not billed, until the over-report is covered.
func (r *reconciler) cancel(ctx context.Context, rep *ReconcileReport, h *ReconcileHour, unbilled []billing.Batch) {
	sort.Slice(unbilled, func(i, j int) bool { return unbilled[i].ID < unbilled[j].ID })
	var cancelled int64
	var old []string
	for _, b := range unbilled {
		if cancelled >= h.Drift {
			break
		}
		if r.now.Sub(b.UpdatedAt) >= cancelWindow {
			old = append(old, fmt.Sprintf("%s (%d bytes, %s since %s)", b.ID, b.Bytes, b.State, b.UpdatedAt.UTC().Format(time.RFC3339)))
			continue
		}
		id := BatchIdentifier(b)
		a := ReconcileAction{Kind: "cancel", Customer: h.Customer, Hour: h.Hour, Identifier: id, Value: b.Bytes, Batch: b.ID}
		params := &stripego.BillingMeterEventAdjustmentParams{
			EventName: stripego.String(r.eventName),
			Type:      stripego.String(string(stripego.BillingMeterEventAdjustmentTypeCancel)),
			Cancel:    &stripego.BillingMeterEventAdjustmentCancelParams{Identifier: stripego.String(id)},
		}
		params.Context = ctx
		err := send(ctx, func() error { _, err := r.adjustments.New(params); return err })
		var se *stripego.Error
		switch {
		case err == nil:
			a.Done, a.Result = true, "cancelled"
			cancelled += b.Bytes
		case errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest:
			// The most likely reason: Stripe never counted the batch.
			a.Result = "not cancelled: " + se.Msg
		default:
			a.Result = "failed: " + err.Error()
		}
		rep.Actions = append(rep.Actions, a)
	}
	left := h.Drift - cancelled
	switch {
	case left == 0:
		h.Status = Mended
	case left < 0:
		// Stripe held more of the unbilled batches than the over-report:
		// the hour is now under-reported, which a run after Stripe's
		// summary shows the cancels will correct.
		h.Status, h.Unmended = Unmended, left
		h.Reason = fmt.Sprintf("cancelled %d bytes of batches the ledger holds as not billed, %d more than Stripe over-counted: run again once Stripe's summary shows the cancels, to correct the hour", cancelled, -left)
	default:
		h.Status, h.Unmended = Unmended, left
		h.Reason = fmt.Sprintf("Stripe bills %d bytes more than the ledger reported", left)
		if cancelled > 0 {
			h.Reason += fmt.Sprintf(" after cancelling %d", cancelled)
		}
		h.Reason += ", and no batch the ledger holds as not billed accounts for them within Stripe's 24 h cancel window"
		if len(old) > 0 {
			h.Reason += "; sent more than 24 h ago, past cancelling: " + strings.Join(old, ", ")
		}
	}
}

// send makes one correction or cancel call, again after a 429 (a worker
// may be calling Stripe for the same customer and meter, which Stripe
// allows one at a time); stripe-go does not retry a plain 429.
func send(ctx context.Context, call func() error) error {
	wait := 250 * time.Millisecond
	for try := 1; ; try++ {
		err := call()
		var se *stripego.Error
		if err == nil || try == reconcileTries || !errors.As(err, &se) || se.HTTPStatusCode != http.StatusTooManyRequests {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// CorrectionIdentifier is the identifier of the correction that adds
// ledger - billed bytes to the customer's hour. It depends on the totals
// compared, not on when the run happens: a run repeated before Stripe's
// summary shows the correction makes the same one, which Stripe refuses
// as a duplicate, while a later drift of the same hour (other totals)
// gets a correction of its own. Batch identifiers are CIDs, so the
// prefix keeps the two apart.
func CorrectionIdentifier(eventName, customer string, hour time.Time, ledger, billed int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d\x00%d", eventName, customer, hour.Unix(), ledger, billed))
	return "egressd-fix-" + hour.UTC().Format("20060102T15") + "-" + hex.EncodeToString(sum[:16])
}
