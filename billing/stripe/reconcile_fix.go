package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v81"

	"github.com/egressd/egressd/billing"
)

// A run's work on each customer: its batches read from the ledger and
// grouped by the account they were billed to, each account's hours compared
// with Stripe's summaries of it, and what drifted mended: corrections of
// under-reports, cancels of over-reports.

// stripeCustomerOf is the Stripe customer ID of an account, "" when the
// account is not "stripe:cus_...".
func stripeCustomerOf(account string) string {
	id, ok := strings.CutPrefix(account, "stripe:")
	if !ok || !strings.HasPrefix(id, "cus_") {
		return ""
	}
	return id
}

// noAccountReason is why a customer's account of today cannot be compared,
// "" when it can; unknown is whether the customer store knows the customer.
func noAccountReason(account string, unknown bool) string {
	switch {
	case unknown:
		return "unknown to the customer store"
	case account == "":
		return "no Stripe account"
	case stripeCustomerOf(account) == "":
		return fmt.Sprintf("account %q is not a Stripe customer (stripe:cus_...)", account)
	}
	return ""
}

// ledgerHour is what the ledger holds for one customer's hour at one account.
type ledgerHour struct {
	reported int64
	// unbilled are the batches that Stripe should not count and may have
	// counted: pending, failed and unbillable (a rejected batch's
	// identifier is one Stripe said it does not bill).
	unbilled []billing.Batch
}

// customerHour is what the ledger holds for one customer's hour, whatever
// the account.
type customerHour struct {
	// inFlight are the batches held as pending or failed: sent, or to be,
	// and Stripe may count them yet, at whichever account it was sent to.
	inFlight []billing.Batch
	// changed is when the ledger last recorded or settled a batch of the hour.
	changed time.Time
}

// customerLedger is one customer's batches in the range.
type customerLedger struct {
	accounts map[string]map[time.Time]*ledgerHour // by the account billed
	hours    map[time.Time]*customerHour
	// unexamined is the reported bytes no account can be compared for, by
	// reason.
	unexamined map[string]int64
}

// customer reconciles one customer over the report's range: each account
// its batches were billed to, its account of today first.
func (r *reconciler) customer(ctx context.Context, rep *ReconcileReport, c ReconcileCustomer) error {
	noAccount := noAccountReason(c.Account, c.Unknown)
	led := customerLedger{accounts: make(map[string]map[time.Time]*ledgerHour), hours: make(map[time.Time]*customerHour), unexamined: make(map[string]int64)}
	err := r.ledgerBatches(ctx, c.Customer, rep.From, rep.To, func(b billing.Batch) {
		hour := b.Timestamp.UTC().Truncate(time.Hour)
		ch := led.hours[hour]
		if ch == nil {
			ch = &customerHour{}
			led.hours[hour] = ch
		}
		if b.State == billing.Pending || b.State == billing.Failed {
			ch.inFlight = append(ch.inFlight, b)
		}
		for _, t := range []time.Time{b.RecordedAt, b.UpdatedAt} {
			if t.After(ch.changed) {
				ch.changed = t
			}
		}
		account, why := b.Account, ""
		switch {
		case account == "":
			// Billed before the ledger kept accounts: to today's account,
			// or, with none today, to one nobody can name.
			account, why = c.Account, noAccount
		case stripeCustomerOf(account) == "":
			why = fmt.Sprintf("batches billed to %q, not a Stripe customer", account)
		}
		if why != "" {
			if b.State == billing.Reported {
				led.unexamined[why] += b.Bytes
			}
			return
		}
		hours := led.accounts[account]
		if hours == nil {
			hours = make(map[time.Time]*ledgerHour)
			led.accounts[account] = hours
		}
		lh := hours[hour]
		if lh == nil {
			lh = &ledgerHour{}
			hours[hour] = lh
		}
		switch b.State {
		case billing.Reported:
			lh.reported += b.Bytes
		case billing.Pending, billing.Failed, billing.Unbillable:
			lh.unbilled = append(lh.unbilled, b)
		}
	})
	if err != nil {
		return err
	}
	var accounts []string
	for account := range led.accounts {
		if account != c.Account {
			accounts = append(accounts, account)
		}
	}
	sort.Strings(accounts)
	if noAccount == "" {
		// Stripe may bill today's account for hours the ledger has nothing in.
		accounts = append([]string{c.Account}, accounts...)
	}
	for _, account := range accounts {
		if err := r.account(ctx, rep, c, account, &led); err != nil {
			return err
		}
	}
	if len(accounts) > 0 {
		rep.Customers++
	}
	if noAccount != "" {
		rep.Skipped = append(rep.Skipped, SkippedCustomer{c.Customer, noAccount, led.unexamined[noAccount]})
		delete(led.unexamined, noAccount)
	}
	var reasons []string
	for why := range led.unexamined {
		reasons = append(reasons, why)
	}
	sort.Strings(reasons)
	for _, why := range reasons {
		rep.Skipped = append(rep.Skipped, SkippedCustomer{c.Customer, why, led.unexamined[why]})
	}
	return nil
}

// account compares the customer's hours at one account with Stripe's
// summaries of that account.
func (r *reconciler) account(ctx context.Context, rep *ReconcileReport, c ReconcileCustomer, account string, led *customerLedger) error {
	stripeCustomer := stripeCustomerOf(account)
	hours := led.accounts[account]
	billed, err := r.stripeHours(ctx, stripeCustomer, rep.From, rep.To)
	if err != nil {
		return err
	}
	var keys []time.Time
	for hour, h := range hours {
		if h.reported != 0 || billed[hour] != 0 {
			keys = append(keys, hour)
		}
	}
	for hour, v := range billed {
		if v != 0 && hours[hour] == nil {
			keys = append(keys, hour)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Before(keys[j]) })
	for _, hour := range keys {
		lh, ch := hours[hour], led.hours[hour]
		if lh == nil {
			lh = &ledgerHour{}
		}
		if ch == nil {
			ch = &customerHour{}
		}
		h := ReconcileHour{Customer: c.Customer, Account: account, Former: account != c.Account, Hour: hour, Ledger: lh.reported, Stripe: billed[hour]}
		h.Drift = h.Stripe - h.Ledger
		r.mend(ctx, rep, &h, c, lh, ch)
		rep.Hours = append(rep.Hours, h)
	}
	return nil
}

// ledgerBatches calls fn with each of the customer's batches in [from, to).
func (r *reconciler) ledgerBatches(ctx context.Context, customer string, from, to time.Time, fn func(billing.Batch)) error {
	err := r.ledger.Batches(ctx, billing.BatchFilter{Customer: customer, From: from, To: to}, func(b billing.Batch) error {
		fn(b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the ledger's batches of %s: %w", customer, err)
	}
	return nil
}

// stripeHours is Stripe's summary of the customer's billed bytes in each
// hour of [from, to). Stripe sums as doubles: exact up to 2^53 bytes an
// hour, far beyond any customer's egress.
func (r *reconciler) stripeHours(ctx context.Context, customer string, from, to time.Time) (map[time.Time]int64, error) {
	params := &stripego.BillingMeterEventSummaryListParams{
		ID:                  stripego.String(r.meterID),
		Customer:            stripego.String(customer),
		StartTime:           stripego.Int64(from.Unix()),
		EndTime:             stripego.Int64(to.Unix()),
		ValueGroupingWindow: stripego.String("hour"),
	}
	params.Context = ctx
	params.Limit = stripego.Int64(100)
	out := make(map[time.Time]int64)
	it := r.summaries.List(params)
	for it.Next() {
		s := it.BillingMeterEventSummary()
		out[time.Unix(s.StartTime, 0).UTC()] += int64(math.Round(s.AggregatedValue))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("asking Stripe for the hourly summaries of %s: %w", customer, err)
	}
	return out, nil
}

// mend decides an hour's status and, with Fix, corrects or cancels what
// it can. lh is the hour at h.Account, ch the customer's hour at every
// account.
func (r *reconciler) mend(ctx context.Context, rep *ReconcileReport, h *ReconcileHour, c ReconcileCustomer, lh *ledgerHour, ch *customerHour) {
	switch {
	case h.Drift == 0:
		h.Status = Match
	case r.now.Sub(ch.changed) < r.settle:
		h.Status, h.Unmended = Unsettled, h.Drift
		h.Reason = fmt.Sprintf("the ledger changed this hour at %s, less than %s ago, and Stripe's summary may lag: run again after %s",
			ch.changed.UTC().Format(time.RFC3339), r.settle, ch.changed.Add(r.settle).UTC().Format(time.RFC3339))
	case h.Drift < 0:
		h.Status, h.Unmended, h.Reason = Unmended, h.Drift, uncorrectable(h, c, ch)
		switch {
		case !r.fix:
			h.Status = Drift
		case h.Reason == "":
			r.correct(ctx, rep, h)
		}
	case !r.fix:
		h.Status, h.Unmended = Drift, h.Drift
	default:
		r.cancel(ctx, rep, h, lh.unbilled)
	}
}

// uncorrectable is why an under-reported hour gets no correction whatever
// Fix says, "" when it may get one.
func uncorrectable(h *ReconcileHour, c ReconcileCustomer, ch *customerHour) string {
	missing := -h.Drift
	switch {
	case h.Former:
		now := c.Account
		if now == "" {
			now = "none"
		}
		return fmt.Sprintf("Stripe bills %s %d bytes less than the ledger reported billed to it, and it is no longer the customer's account (now %s): "+
			"corrections go only to the account of today, so bill what is owed by hand", h.Account, missing, now)
	case len(ch.inFlight) > 0:
		// Whatever account they went to: the worker or a redrive may have
		// sent them to today's.
		var named []string
		for i, b := range ch.inFlight {
			if i == 5 {
				named = append(named, fmt.Sprintf("and %d more", len(ch.inFlight)-i))
				break
			}
			named = append(named, fmt.Sprintf("%s (%d bytes, %s)", b.ID, b.Bytes, b.State))
		}
		return fmt.Sprintf("batches in flight: redrive or wait: Stripe bills %d bytes less than the ledger reported, and the ledger holds %s as pending or failed; "+
			"they were sent, or will be, and Stripe may count them yet, so a correction could bill them twice", missing, strings.Join(named, ", "))
	}
	return ""
}

// correct sends the correction of an under-reported hour.
func (r *reconciler) correct(ctx context.Context, rep *ReconcileReport, h *ReconcileHour) {
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
	id := CorrectionIdentifier(r.eventName, h.Account, h.Hour, h.Ledger)
	a := ReconcileAction{Kind: "correction", Customer: h.Customer, Account: h.Account, Hour: h.Hour, Identifier: id, Value: missing}
	params := &stripego.BillingMeterEventParams{
		EventName:  stripego.String(r.eventName),
		Identifier: stripego.String(id),
		Payload:    map[string]string{"stripe_customer_id": stripeCustomerOf(h.Account), "value": strconv.FormatInt(missing, 10)},
		Timestamp:  stripego.Int64(ts.Unix()),
	}
	params.Context = ctx
	err := send(ctx, func() error { _, err := r.events.New(params); return err })
	var se *stripego.Error
	switch {
	case err == nil:
		a.Done, a.Result = true, "sent"
	case errors.As(err, &se) && alreadyCounted(se):
		a.Done, a.Result = true, "already at Stripe: sent by an earlier run for the same ledger total, not yet in Stripe's summary"
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
		a := ReconcileAction{Kind: "cancel", Customer: h.Customer, Account: h.Account, Hour: h.Hour, Identifier: id, Value: b.Bytes, Batch: b.ID}
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
		// the hour is now under-reported, which a run after the cancelled
		// batches are redriven (Stripe refuses them as duplicates, and the
		// ledger counts them reported) will correct.
		h.Status, h.Unmended = Unmended, left
		h.Reason = fmt.Sprintf("cancelled %d bytes of batches the ledger holds as not billed, %d more than Stripe over-counted: redrive them, then run again once Stripe's summary shows the cancels, to correct the hour", cancelled, -left)
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

// CorrectionIdentifier is the identifier of the correction that brings an
// account's hour up to the ledger's total. It depends on that total alone,
// not on Stripe's nor on when the run happens: a run repeated while the
// ledger's total stands makes the same one, which Stripe refuses as a
// duplicate, even when Stripe's summary moved meanwhile (a late sum of a
// batch, of the correction itself); only a change in the ledger's total
// gets a correction of its own. Batch identifiers are CIDs, so the prefix
// keeps the two apart.
func CorrectionIdentifier(eventName, account string, hour time.Time, ledger int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", eventName, account, hour.Unix(), ledger))
	return "egressd-fix-" + hour.UTC().Format("20060102T15") + "-" + hex.EncodeToString(sum[:16])
}
