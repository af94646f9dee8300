package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/console"
	"github.com/egressd/egressd/customers"
)

// reconcileCommand is `egressd billing reconcile`: the ledger against
// Stripe's hourly summaries, and with --fix the corrections and cancels
// that mend the difference.
func reconcileCommand() *ffcli.Command {
	var (
		backend          backendFlags
		stripeCfg        stripeFlags
		fromFlag, toFlag string
		customer         string
		fix, asJSON      bool
		settle           time.Duration
	)
	fs := flag.NewFlagSet("billing reconcile", flag.ContinueOnError)
	backend.register(fs)
	backend.mustExist = true
	stripeCfg.register(fs)
	fs.StringVar(&fromFlag, "from", "", "start of the range to reconcile, RFC 3339 (2026-05-01T00:00:00Z); rounded down to the hour (required)")
	fs.StringVar(&toFlag, "to", "", "end of the range to reconcile, RFC 3339, exclusive; rounded up to the hour; at most 36 days after --from (required)")
	fs.StringVar(&customer, "customer", "", "reconcile only this customer (did:mailto:...); default: every customer with usage in the months the range touches")
	fs.BoolVar(&fix, "fix", false, "mend the drift: send corrections for under-reports of a customer's account of today with no batch in flight, cancel over-reports made in the past 24 h by batches the ledger holds as not billed; name what cannot be mended")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	fs.DurationVar(&settle, "settle", stripe.DefaultSettle, "how long after the ledger last changed an hour Stripe's summary of it is trusted (Stripe sums meter events asynchronously); 0 trusts it at once")
	return command("reconcile",
		"egressd billing reconcile --from RFC3339 --to RFC3339 [--customer did:mailto:...] [--fix] [--json]",
		"compare the ledger with what Stripe bills, hour by hour, and with --fix mend the difference", fs,
		func(ctx context.Context, args []string) error {
			cfg := stripe.ReconcileConfig{EventName: stripeCfg.eventName(), URL: stripeCfg.url, Rate: stripeCfg.rate, Timeout: stripeCfg.timeout, Fix: fix, Settle: settle}
			var err error
			if cfg.From, cfg.To, err = reconcileRange(fromFlag, toFlag); err != nil {
				return err
			}
			switch {
			case settle < 0:
				return fmt.Errorf("--settle %s: must not be negative", settle)
			case settle == 0:
				cfg.Settle = -1 // Reconcile's zero is its default
			}
			if customer != "" {
				if err := checkDID(customer, "did:mailto:", "--customer"); err != nil {
					return err
				}
			}
			if cfg.Key = stripeCfg.secretKey(); cfg.Key == "" {
				return errors.New("billing reconcile needs a Stripe key: --stripe-key or STRIPE_SECRET_KEY")
			}
			b, err := backend.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			cfg.Ledger = b.Ledger
			if cfg.Customers, err = reconcileCustomers(ctx, b, customer, cfg.From, cfg.To); err != nil {
				return err
			}
			rep, err := stripe.Reconcile(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printReconcile(os.Stdout, rep)
			}
			verdict := reconcileVerdict(rep)
			outcome := console.Reconcile{At: time.Now().UTC(), OK: verdict == nil,
				Summary: fmt.Sprintf("%d hours from %s to %s match what Stripe bills", len(rep.Hours), cfg.From.Format(time.RFC3339), cfg.To.Format(time.RFC3339))}
			if verdict != nil {
				outcome.Summary = verdict.Error()
			}
			// For the console of a serve on this data directory.
			if err := saveReconcile(backend.dataDir, outcome); err != nil {
				fmt.Fprintf(os.Stderr, "egressd: the outcome is not kept for the console: %v\n", err)
			}
			return verdict
		})
}

// reconcileRange reads --from and --to, rounded outward to whole hours.
func reconcileRange(fromFlag, toFlag string) (time.Time, time.Time, error) {
	if fromFlag == "" || toFlag == "" {
		return time.Time{}, time.Time{}, errors.New("--from and --to are required (RFC 3339, such as 2026-05-01T00:00:00Z)")
	}
	from, err := time.Parse(time.RFC3339, fromFlag)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from %q: want RFC 3339, such as 2026-05-01T00:00:00Z", fromFlag)
	}
	to, err := time.Parse(time.RFC3339, toFlag)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--to %q: want RFC 3339, such as 2026-05-02T00:00:00Z", toFlag)
	}
	if from, to, err = stripe.CheckRange(from, to); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from, --to: %w", err)
	}
	return from, to, nil
}

// reconcileCustomers is --customer, or every customer with usage in the
// months [from, to) touches, each with its account of today ("" for none,
// or for a customer the customer store does not know, marked Unknown).
func reconcileCustomers(ctx context.Context, b *stores, customer string, from, to time.Time) ([]stripe.ReconcileCustomer, error) {
	var names []string
	if customer != "" {
		names = []string{customer}
	} else {
		seen := make(map[string]bool)
		for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC); m.Before(to); m = m.AddDate(0, 1, 0) {
			usage, err := b.Ledger.Usage(ctx, billing.UsageFilter{Month: billing.Month(m)})
			if err != nil {
				return nil, fmt.Errorf("reading the ledger's usage of %s: %w", billing.Month(m), err)
			}
			for _, u := range usage {
				if !seen[u.Customer] {
					seen[u.Customer] = true
					names = append(names, u.Customer)
				}
			}
		}
		sort.Strings(names)
	}
	out := make([]stripe.ReconcileCustomer, 0, len(names))
	for _, name := range names {
		account, err := b.Customers.Account(ctx, name)
		unknown := errors.Is(err, customers.ErrNotFound)
		if err != nil && !unknown {
			return nil, fmt.Errorf("finding the account of %s: %w", name, err)
		}
		out = append(out, stripe.ReconcileCustomer{Customer: name, Account: account, Unknown: unknown})
	}
	return out, nil
}

// printReconcile prints the report as tables: the hours, what was sent,
// who was skipped, and every drift left with its reason.
func printReconcile(w io.Writer, rep stripe.ReconcileReport) {
	fmt.Fprintf(w, "reconcile %s to %s, meter %s (%s), customers compared: %d\n\n",
		rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), rep.Meter, rep.EventName, rep.Customers)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CUSTOMER\tACCOUNT\tHOUR\tLEDGER\tSTRIPE\tDRIFT\tSTATUS")
	for _, h := range rep.Hours {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", h.Customer, accountOf(h), h.Hour.Format(time.RFC3339), h.Ledger, h.Stripe, signed(h.Drift), h.Status)
	}
	tw.Flush()
	if len(rep.Actions) > 0 {
		fmt.Fprintln(w, "\nsent to Stripe:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, a := range rep.Actions {
			value, id := signed(a.Value), a.Identifier
			if a.Kind == "cancel" {
				value = signed(-a.Value)
				if a.Batch != a.Identifier {
					id += " (batch " + a.Batch + ")"
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Kind, a.Customer, a.Account, a.Hour.Format(time.RFC3339), value, id, a.Result)
		}
		tw.Flush()
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintln(w)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s: %s", s.Customer, s.Reason)
		if s.Bytes != 0 {
			fmt.Fprintf(w, "; %d reported bytes in the range unexamined", s.Bytes)
		}
		fmt.Fprintln(w)
	}
	var left []stripe.ReconcileHour
	for _, h := range rep.Hours {
		if h.Status != stripe.Match && h.Status != stripe.Mended {
			left = append(left, h)
		}
	}
	if len(left) > 0 {
		fmt.Fprintln(w, "\nnot mended:")
		for _, h := range left {
			reason := h.Reason
			if h.Status == stripe.Drift && reason == "" {
				reason = "run with --fix to mend what can be"
			}
			fmt.Fprintf(w, "  %s %s %s: %s bytes (%s): %s\n", h.Customer, accountOf(h), h.Hour.Format(time.RFC3339), signed(h.Unmended), h.Status, reason)
		}
	}
}

// accountOf is the hour's account, marked when it is no longer the
// customer's.
func accountOf(h stripe.ReconcileHour) string {
	if h.Former {
		return h.Account + " (former)"
	}
	return h.Account
}

// signed writes n with its sign, and 0 as it is.
func signed(n int64) string {
	if n > 0 {
		return "+" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// reconcileVerdict is nil when every hour matches or was mended and no
// reported bytes went unexamined, and otherwise an error counting the
// rest, which makes the exit status 1.
func reconcileVerdict(rep stripe.ReconcileReport) error {
	if rep.OK() {
		return nil
	}
	counts := make(map[stripe.HourStatus]int)
	for _, h := range rep.Hours {
		counts[h.Status]++
	}
	var found []string
	if left := len(rep.Hours) - counts[stripe.Match] - counts[stripe.Mended]; left > 0 {
		var parts []string
		for _, s := range []stripe.HourStatus{stripe.Drift, stripe.Unsettled, stripe.Unmended} {
			if counts[s] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			}
		}
		found = append(found, fmt.Sprintf("%d of %d hours do not match what Stripe bills (%s)", left, len(rep.Hours), strings.Join(parts, ", ")))
	}
	var unexamined []string
	for _, s := range rep.Skipped {
		if s.Bytes != 0 {
			unexamined = append(unexamined, fmt.Sprintf("%s %d bytes", s.Customer, s.Bytes))
		}
	}
	if len(unexamined) > 0 {
		found = append(found, "reported bytes compared with no account: "+strings.Join(unexamined, ", "))
	}
	return errors.New("billing reconcile: " + strings.Join(found, "; "))
}
