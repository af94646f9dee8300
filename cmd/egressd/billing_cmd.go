package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
)

func billingCommand() *ffcli.Command {
	var (
		backend             backendFlags
		stripeCfg           stripeFlags
		worker              workerFlags
		states              stringList
		customer            string
		force               bool
		logFormat, logLevel string
	)
	fs := flag.NewFlagSet("billing redrive", flag.ContinueOnError)
	backend.register(fs)
	backend.mustExist = true
	stripeCfg.register(fs)
	worker.registerSettle(fs)
	fs.Var(&states, "state", "ledger state to re-send: unbillable, failed, rejected or pending (repeatable or comma-separated; rejected entries go under a new identifier); default: unbillable and failed")
	fs.StringVar(&customer, "customer", "", "re-send only this customer's events (did:mailto:...); default: all customers")
	fs.BoolVar(&force, "force", false, "also re-send failed and pending batches last sent more than 23h ago, which Stripe may already count (it forgets identifiers after 24h): check with billing reconcile first")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	redrive := command("redrive",
		"egressd billing redrive --data-dir DIR [--state unbillable|failed|rejected|pending] [--customer did:mailto:...] [--stripe-key sk_...]",
		"send unbillable, failed or rejected events to Stripe again, once their cause is fixed", fs,
		func(ctx context.Context, args []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			filter := billing.RedriveFilter{Force: force}
			if filter.States, err = parseStates(states); err != nil {
				return err
			}
			if customer != "" {
				if err := checkDID(customer, "did:mailto:", "--customer"); err != nil {
					return err
				}
				filter.Customer = customer
			}
			// Checked before anything else: without a key every entry would
			// only be marked unbillable again, and sink would warn as serve
			// does that they will be.
			if stripeCfg.secretKey() == "" {
				return errors.New("billing redrive needs a Stripe key: --stripe-key or STRIPE_SECRET_KEY")
			}
			backend.log = log
			b, err := backend.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			sink, err := stripeCfg.sink(log)
			if err != nil {
				return err
			}
			w, err := worker.newWorker(b, sink, log, prometheus.NewRegistry())
			if err != nil {
				return err
			}
			res, err := w.Redrive(ctx, filter)
			printRedrive(res)
			return err
		})
	root := command("billing", "egressd billing list|redrive|reconcile [flags]", "operate on the billing ledger", flag.NewFlagSet("billing", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{listCommand(), redrive, reconcileCommand(), deadLettersCommand()}
	return root
}

// parseStates reads repeatable, comma-separated --state values.
func parseStates(values stringList) ([]billing.State, error) {
	var states []billing.State
	for _, list := range values {
		for _, s := range strings.Split(list, ",") {
			st, err := billing.ParseState(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("--state: %w", err)
			}
			states = append(states, st)
		}
	}
	return states, nil
}

func printRedrive(res billing.RedriveResult) {
	total := res.Errors + res.Held + res.Repaired
	var parts []string
	for _, s := range billing.States {
		if n := res.Settled[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
			total += n
		}
	}
	if total == 0 {
		fmt.Println("redrive: no entries matched")
		return
	}
	line := fmt.Sprintf("redrive: %d entries: %s", total, strings.Join(parts, ", "))
	if res.Repaired > 0 {
		line += fmt.Sprintf("; %d brought into line with their settled batch", res.Repaired)
	}
	if res.Held > 0 {
		line += fmt.Sprintf("; %d held back: their batches were last sent more than %v ago and Stripe may count them again (check with billing reconcile, then redrive with --force)", res.Held, billing.ResendWindow)
	}
	if res.Errors > 0 {
		line += fmt.Sprintf("; %d left as they were (store errors, see the log)", res.Errors)
	}
	fmt.Println(line)
}
