package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v81"
	"github.com/stripe/stripe-go/v81/billing/meter"
	"github.com/stripe/stripe-go/v81/billing/meterevent"
	"github.com/stripe/stripe-go/v81/billing/metereventadjustment"
	"github.com/stripe/stripe-go/v81/billing/metereventsummary"
	"golang.org/x/time/rate"

	"github.com/egressd/egressd/billing"
)

// Reconciliation compares, customer by customer and UTC hour by UTC hour,
// what the ledger says Stripe should bill (the bytes of its reported
// batches, each one meter event stamped inside its hour) with what Stripe
// bills (its meter event summaries). Stripe offers no list of the meter
// events it holds, only these totals, which is why the comparison is by hour.
// Stripe sums by its own customer, so each hour is compared account by
// account: an account's summary with the batches billed to that account.

// Limits of reconciliation.
const (
	// MaxReconcileRange is the longest range one run reconciles: Stripe
	// takes meter events, corrections included, for the past 35 days, and
	// the extra day lets a run cover those 35 days from hour boundaries.
	MaxReconcileRange = 36 * 24 * time.Hour
	// DefaultSettle is how long after the ledger last changed an hour (a
	// batch recorded or settled) reconciliation trusts Stripe's summary of
	// it: Stripe sums meter events asynchronously, so a summary can lag
	// the events it has accepted by minutes.
	DefaultSettle = 15 * time.Minute
	// correctionDays is how far back Stripe accepts a meter event's
	// timestamp (calendar days, UTC).
	correctionDays = 35
	// correctionMargin keeps a correction's timestamp clear of that limit,
	// for the time the call takes and clocks that disagree.
	correctionMargin = 5 * time.Minute
	// cancelWindow is how long after Stripe received a meter event a
	// cancel adjustment can remove it.
	cancelWindow = 24 * time.Hour
	// reconcileTries bounds the calls for one correction or cancel that
	// Stripe answers 429 (a worker is calling for the same customer).
	reconcileTries = 6
)

// ReconcileConfig configures Reconcile. Ledger and Key are required.
type ReconcileConfig struct {
	Ledger billing.Ledger
	// Key, URL, EventName, Rate and Timeout are as in Config.
	Key       string
	URL       string
	EventName string
	Rate      float64
	Timeout   time.Duration
	// HTTPClient makes the calls; nil is a client with Timeout. Its
	// transport is wrapped to keep to Rate.
	HTTPClient *http.Client
	// Customers are the customers to reconcile, each with its account.
	Customers []ReconcileCustomer
	// From and To bound the range, rounded outward to whole UTC hours
	// (see CheckRange).
	From, To time.Time
	// Fix mends the drift it can: it sends corrections for under-reports
	// and cancels over-reports it can name (see Reconcile).
	Fix bool
	// Settle is how long after the ledger last changed an hour its drift
	// is trusted; zero is DefaultSettle, negative trusts it at once.
	Settle time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// ReconcileCustomer is a customer and its account of today.
type ReconcileCustomer struct {
	Customer string `json:"customer"`
	// Account is "stripe:cus_..."; "" when the customer has none. Only
	// this account is corrected; batches billed to others are compared
	// with those.
	Account string `json:"account"`
	// Unknown is true when the customer store does not know the customer
	// (Account is then "").
	Unknown bool `json:"unknown,omitempty"`
}

// HourStatus is what reconciliation found for one customer's hour.
type HourStatus string

const (
	// Match: Stripe bills what the ledger reported.
	Match HourStatus = "match"
	// Unsettled: they differ, but the ledger changed the hour too recently
	// for Stripe's summary to be trusted; a later run decides.
	Unsettled HourStatus = "unsettled"
	// Drift: they differ, and nothing was done (no Fix).
	Drift HourStatus = "drift"
	// Mended: they differed, and corrections or cancels now at Stripe make
	// up the difference (its summary may show it only minutes later).
	Mended HourStatus = "mended"
	// Unmended: they differ by Unmended bytes that this run could not mend,
	// for Reason.
	Unmended HourStatus = "unmended"
)

// ReconcileHour is one customer's hour at one account in which the ledger
// or Stripe counts any bytes.
type ReconcileHour struct {
	Customer string `json:"customer"`
	// Account is the account compared: the customer's of today, or one the
	// ledger billed some of its batches to before (Former).
	Account string    `json:"account"`
	Former  bool      `json:"former,omitempty"`
	Hour    time.Time `json:"hour"`
	// Ledger is the bytes of the hour's batches reported to Account, Stripe
	// Account's summary, Drift Stripe - Ledger: above zero Stripe bills more than the
	// ledger reported (an over-report), below zero less (an under-report).
	Ledger int64      `json:"ledger"`
	Stripe int64      `json:"stripe"`
	Drift  int64      `json:"drift"`
	Status HourStatus `json:"status"`
	// Unmended is the part of Drift left as it was (all of it for Drift and
	// Unsettled), with the reason.
	Unmended int64  `json:"unmended,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// ReconcileAction is one correction or cancel sent to Stripe.
type ReconcileAction struct {
	// Kind is "correction" (a meter event adding Value bytes to Hour) or
	// "cancel" (a cancel adjustment of Batch's meter event, Value bytes).
	Kind     string `json:"kind"`
	Customer string `json:"customer"`
	// Account is the account of the hour mended.
	Account    string    `json:"account"`
	Hour       time.Time `json:"hour"`
	Identifier string    `json:"identifier"`
	Value      int64     `json:"value"`
	Batch      string    `json:"batch,omitempty"`
	// Done is true when Stripe holds the correction or took the cancel.
	Done bool `json:"done"`
	// Result is what Stripe answered, in words.
	Result string `json:"result"`
}

// SkippedCustomer is a customer whose batches, some or all, could be
// compared with no account, and why.
type SkippedCustomer struct {
	Customer string `json:"customer"`
	Reason   string `json:"reason"`
	// Bytes is what the ledger reported of those batches in the range:
	// billed, but unexamined.
	Bytes int64 `json:"bytes"`
}

// ReconcileReport is what Reconcile found and did.
type ReconcileReport struct {
	// From and To are the range as reconciled, whole UTC hours.
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	EventName string    `json:"eventName"`
	Meter     string    `json:"meter"`
	Fix       bool      `json:"fix"`
	// Customers is how many customers had at least one account compared.
	Customers int               `json:"customers"`
	Hours     []ReconcileHour   `json:"hours"`
	Actions   []ReconcileAction `json:"actions"`
	Skipped   []SkippedCustomer `json:"skipped"`
}

// OK reports whether every hour matches or was mended, and no reported
// bytes went unexamined.
func (r ReconcileReport) OK() bool {
	for _, h := range r.Hours {
		if h.Status != Match && h.Status != Mended {
			return false
		}
	}
	for _, s := range r.Skipped {
		if s.Bytes != 0 {
			return false
		}
	}
	return true
}

// CheckRange rounds [from, to) outward to whole UTC hours (Stripe's hourly
// summaries start on them) and checks it is not empty and at most
// MaxReconcileRange long.
func CheckRange(from, to time.Time) (time.Time, time.Time, error) {
	from = from.UTC().Truncate(time.Hour)
	if t := to.UTC().Truncate(time.Hour); t.Before(to) {
		to = t.Add(time.Hour)
	} else {
		to = t
	}
	switch {
	case !from.Before(to):
		return from, to, fmt.Errorf("the range is empty: from %s must be before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	case to.Sub(from) > MaxReconcileRange:
		return from, to, fmt.Errorf("the range %s to %s is %s long, at most %d days (Stripe takes corrections for the past %d days): reconcile it in parts",
			from.Format(time.RFC3339), to.Format(time.RFC3339), to.Sub(from), MaxReconcileRange/(24*time.Hour), correctionDays)
	}
	return from, to, nil
}

// Reconcile compares the ledger with Stripe for each customer, account and
// hour of the range, and with Fix mends what it can.
//
// A batch is compared with the account the ledger says it was billed to
// (Batch.Account), one from before the ledger kept accounts with the
// customer's account of today. So once a customer's account changes, what
// was billed to the old one is compared with the old one, not taken for an
// under-report of the new one.
//
//   - An under-report (Stripe bills less) gets a correction: one meter
//     event of the missing bytes, stamped inside the hour, under an
//     identifier derived from the account, the hour and the ledger's total,
//     not Stripe's (CorrectionIdentifier). A run that repeats while the
//     ledger's total stands sends the same identifier, however Stripe's
//     summary moved meanwhile, and Stripe refuses it as a duplicate: a
//     shortfall is corrected once. Only the customer's account of today is
//     corrected; a former account's under-report is named. Nor is an hour
//     corrected while the ledger holds any of its batches as pending or
//     failed: they were sent, or will be, and Stripe may count them yet, so
//     a correction could bill them twice; such hours are named, to redrive
//     or wait for. Hours older than Stripe's 35 days cannot be corrected.
//   - An over-report (Stripe bills more) can only be cancelled event by
//     event, by identifier, within 24 hours of Stripe receiving the event.
//     The only identifiers reconciliation can name are those of the hour's
//     batches the ledger holds as pending, failed or unbillable: Stripe
//     may have counted such a batch (the worker's call arrived, its answer
//     did not) though the ledger says it is not billed. Those last sent in
//     the past 24 hours are cancelled until the over-report is covered;
//     Stripe refuses the cancel of an identifier it does not hold. What
//     it cannot name: an event Stripe counted twice because its identifier
//     came again after Stripe's dedup window, a correction that Stripe
//     summed later than the settle time allowed for, a rejected batch
//     Stripe counted after all, and events something else sent to the
//     meter. Those, and anything older than 24 hours, are left and named.
//
// A cancelled batch keeps its identifier at Stripe, so a later redrive of
// it is refused as a duplicate and the ledger records it as reported
// though Stripe no longer bills it; the next reconciliation finds that
// hour under-reported and corrects it. Redrive before reconciling to
// avoid the round trip.
//
// A customer without an account of today, or with one that is not a
// Stripe customer, is listed as skipped with the bytes of its reported
// batches no account could be compared for (those billed before accounts
// were kept); the report is not OK while any are.
//
// Hours the ledger changed within Settle are compared but neither trusted
// nor mended. Errors from Stripe on a correction or cancel are kept in the
// report; an error reading the ledger or Stripe's meters and summaries
// ends the run.
func Reconcile(ctx context.Context, cfg ReconcileConfig) (ReconcileReport, error) {
	if cfg.Ledger == nil {
		return ReconcileReport{}, errors.New("stripe: reconcile: no ledger")
	}
	if cfg.Key == "" {
		return ReconcileReport{}, errors.New("stripe: reconcile: no secret key")
	}
	from, to, err := CheckRange(cfg.From, cfg.To)
	if err != nil {
		return ReconcileReport{}, fmt.Errorf("stripe: reconcile: %w", err)
	}
	r := newReconciler(cfg)
	rep := ReconcileReport{From: from, To: to, EventName: r.eventName, Fix: cfg.Fix,
		Hours: []ReconcileHour{}, Actions: []ReconcileAction{}, Skipped: []SkippedCustomer{}}
	if rep.Meter, err = r.findMeter(ctx); err != nil {
		return rep, err
	}
	for _, c := range cfg.Customers {
		if err := r.customer(ctx, &rep, c); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// reconciler holds one run's clients and settings.
type reconciler struct {
	ledger      billing.Ledger
	meters      meter.Client
	summaries   metereventsummary.Client
	events      meterevent.Client
	adjustments metereventadjustment.Client
	eventName   string
	meterID     string
	fix         bool
	settle      time.Duration
	now         time.Time
}

func newReconciler(cfg ReconcileConfig) *reconciler {
	if cfg.EventName == "" {
		cfg.EventName = DefaultEventName
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Settle == 0:
		cfg.Settle = DefaultSettle
	case cfg.Settle < 0:
		cfg.Settle = 0
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	client := &http.Client{Timeout: cfg.Timeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = limitedTransport{limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1), next: next}
	backendCfg := &stripego.BackendConfig{
		HTTPClient: client,
		// stripe-go retries network failures, 409s and 5xx, a POST under
		// the same idempotency key; plain 429s are retried in send.
		MaxNetworkRetries: stripego.Int64(2),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
	}
	if cfg.URL != "" {
		backendCfg.URL = stripego.String(cfg.URL)
	}
	b := stripego.NewBackendsWithConfig(backendCfg).API
	return &reconciler{
		ledger:      cfg.Ledger,
		meters:      meter.Client{B: b, Key: cfg.Key},
		summaries:   metereventsummary.Client{B: b, Key: cfg.Key},
		events:      meterevent.Client{B: b, Key: cfg.Key},
		adjustments: metereventadjustment.Client{B: b, Key: cfg.Key},
		eventName:   cfg.EventName,
		fix:         cfg.Fix,
		settle:      cfg.Settle,
		now:         now().UTC(),
	}
}

// limitedTransport keeps every call, list pages included, to a rate, so a
// run over many customers leaves room for the worker's calls.
type limitedTransport struct {
	limiter *rate.Limiter
	next    http.RoundTripper
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.limiter.Wait(req.Context()); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// findMeter finds the meter of the event name: the active one, or else the
// newest inactive one (a deactivated meter still has its summaries).
func (r *reconciler) findMeter(ctx context.Context) (string, error) {
	params := &stripego.BillingMeterListParams{}
	params.Context = ctx
	params.Limit = stripego.Int64(100)
	it := r.meters.List(params)
	var inactive string
	for it.Next() {
		m := it.BillingMeter()
		if m.EventName != r.eventName {
			continue
		}
		if m.Status == stripego.BillingMeterStatusActive {
			r.meterID = m.ID
			return m.ID, nil
		}
		if inactive == "" {
			inactive = m.ID
		}
	}
	if err := it.Err(); err != nil {
		return "", fmt.Errorf("asking Stripe for its meters: %w", err)
	}
	if inactive == "" {
		return "", fmt.Errorf("Stripe has no meter with event name %q: check --stripe-meter-event", r.eventName)
	}
	r.meterID = inactive
	return inactive, nil
}
