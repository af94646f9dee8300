package stripe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
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

// ReconcileCustomer is a customer and its account.
type ReconcileCustomer struct {
	Customer string `json:"customer"`
	// Account is "stripe:cus_..."; "" when the customer has none, in which
	// case it is skipped.
	Account string `json:"account"`
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

// ReconcileHour is one customer's hour in which the ledger or Stripe
// counts any bytes.
type ReconcileHour struct {
	Customer string    `json:"customer"`
	Account  string    `json:"account"`
	Hour     time.Time `json:"hour"`
	// Ledger is the bytes of the hour's reported batches, Stripe its
	// summary, Drift Stripe - Ledger: above zero Stripe bills more than the
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
	Kind       string    `json:"kind"`
	Customer   string    `json:"customer"`
	Hour       time.Time `json:"hour"`
	Identifier string    `json:"identifier"`
	Value      int64     `json:"value"`
	Batch      string    `json:"batch,omitempty"`
	// Done is true when Stripe holds the correction or took the cancel.
	Done bool `json:"done"`
	// Result is what Stripe answered, in words.
	Result string `json:"result"`
}

// SkippedCustomer is a customer that was not reconciled, and why.
type SkippedCustomer struct {
	Customer string `json:"customer"`
	Reason   string `json:"reason"`
}

// ReconcileReport is what Reconcile found and did.
type ReconcileReport struct {
	// From and To are the range as reconciled, whole UTC hours.
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	EventName string    `json:"eventName"`
	Meter     string    `json:"meter"`
	Fix       bool      `json:"fix"`
	// Customers is how many customers were compared.
	Customers int               `json:"customers"`
	Hours     []ReconcileHour   `json:"hours"`
	Actions   []ReconcileAction `json:"actions"`
	Skipped   []SkippedCustomer `json:"skipped"`
}

// OK reports whether every hour matches or was mended.
func (r ReconcileReport) OK() bool {
	for _, h := range r.Hours {
		if h.Status != Match && h.Status != Mended {
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

// Reconcile compares the ledger with Stripe for each customer and hour of
// the range, and with Fix mends what it can:
//
//   - An under-report (Stripe bills less) gets a correction: one meter
//     event of the missing bytes, stamped inside the hour, under an
//     identifier derived from the customer, the hour and the two totals
//     compared (CorrectionIdentifier). A run that repeats before Stripe's
//     summary shows the correction compares the same totals, sends the
//     same identifier, and Stripe refuses it as a duplicate: nothing is
//     counted twice. Once the summary shows it, the hour matches. Hours
//     older than Stripe's 35 days cannot be corrected.
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
		stripeCustomer, ok := strings.CutPrefix(c.Account, "stripe:")
		switch {
		case c.Account == "":
			rep.Skipped = append(rep.Skipped, SkippedCustomer{c.Customer, "no Stripe account"})
			continue
		case !ok || !strings.HasPrefix(stripeCustomer, "cus_"):
			rep.Skipped = append(rep.Skipped, SkippedCustomer{c.Customer, fmt.Sprintf("account %q is not a Stripe customer (stripe:cus_...)", c.Account)})
			continue
		}
		rep.Customers++
		if err := r.customer(ctx, &rep, c, stripeCustomer); err != nil {
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

// ledgerHour is what the ledger holds for one customer's hour.
type ledgerHour struct {
	reported int64
	// unbilled are the batches that Stripe should not count and may have
	// counted: pending, failed and unbillable (a rejected batch's
	// identifier is one Stripe said it does not bill).
	unbilled []billing.Batch
	// changed is when the ledger last recorded or settled a batch of the hour.
	changed time.Time
}

// customer reconciles one customer over the report's range.
func (r *reconciler) customer(ctx context.Context, rep *ReconcileReport, c ReconcileCustomer, stripeCustomer string) error {
	hours := make(map[time.Time]*ledgerHour)
	err := r.ledgerBatches(ctx, c.Customer, rep.From, rep.To, func(b billing.Batch) {
		hour := b.Timestamp.UTC().Truncate(time.Hour)
		h := hours[hour]
		if h == nil {
			h = &ledgerHour{}
			hours[hour] = h
		}
		switch b.State {
		case billing.Reported:
			h.reported += b.Bytes
		case billing.Pending, billing.Failed, billing.Unbillable:
			h.unbilled = append(h.unbilled, b)
		}
		for _, t := range []time.Time{b.RecordedAt, b.UpdatedAt} {
			if t.After(h.changed) {
				h.changed = t
			}
		}
	})
	if err != nil {
		return err
	}
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
		lh := hours[hour]
		if lh == nil {
			lh = &ledgerHour{}
		}
		h := ReconcileHour{Customer: c.Customer, Account: c.Account, Hour: hour, Ledger: lh.reported, Stripe: billed[hour]}
		h.Drift = h.Stripe - h.Ledger
		switch {
		case h.Drift == 0:
			h.Status = Match
		case r.now.Sub(lh.changed) < r.settle:
			h.Status, h.Unmended = Unsettled, h.Drift
			h.Reason = fmt.Sprintf("the ledger changed this hour at %s, less than %s ago, and Stripe's summary may lag: run again after %s",
				lh.changed.UTC().Format(time.RFC3339), r.settle, lh.changed.Add(r.settle).UTC().Format(time.RFC3339))
		case !r.fix:
			h.Status, h.Unmended = Drift, h.Drift
		case h.Drift < 0:
			r.correct(ctx, rep, &h, stripeCustomer)
		default:
			r.cancel(ctx, rep, &h, lh.unbilled)
		}
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
