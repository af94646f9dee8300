package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/egressd/egressd/billing"
)

// usageReport is what `egressd usage --json` prints.
type usageReport struct {
	Month    string          `json:"month"`
	Customer string          `json:"customer,omitempty"`
	Usage    []billing.Usage `json:"usage"`
	// Bytes and Events sum rows that may each hold up to 2^63-1, so the
	// sums may not fit an int64; JSON prints them as exact integers.
	Bytes  *big.Int                `json:"bytes"`
	Events *big.Int                `json:"events"`
	Ledger map[billing.State]int64 `json:"ledger"`
	Queue  queueReport             `json:"queue"`
}

type queueReport struct {
	Depth       int `json:"depth"`
	DeadLetters int `json:"deadLetters"`
}

func usageCommand() *ffcli.Command {
	var (
		backend         backendFlags
		month, customer string
		asJSON          bool
	)
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	// A report: it reads the data directory as it is (a backup too), and
	// never creates one (see backendFlags.checkDataDir).
	backend.registerTables(fs)
	backend.registerQueue(fs)
	backend.ignoreStores(fs)
	backend.mustExist, backend.readOnly = true, true
	fs.StringVar(&month, "month", "", "month to report, YYYY-MM (UTC, by servedAt); default: the current month")
	fs.StringVar(&customer, "customer", "", "report only this customer (did:mailto:...); default: all customers")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return command("usage",
		"egressd usage --data-dir DIR [--month YYYY-MM] [--customer did:mailto:...] [--json]",
		"print egress bytes and events per customer and space, and ledger states", fs,
		func(ctx context.Context, args []string) error {
			rep := usageReport{Month: billing.Month(time.Now()), Customer: customer, Bytes: new(big.Int), Events: new(big.Int)}
			if month != "" {
				m, err := billing.ParseMonth(month)
				if err != nil {
					return fmt.Errorf("--month: %w", err)
				}
				rep.Month = m
			}
			b, err := backend.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			filter := billing.UsageFilter{Month: rep.Month, Customer: customer}
			if rep.Usage, err = b.Ledger.Usage(ctx, filter); err != nil {
				return err
			}
			for _, u := range rep.Usage {
				rep.Bytes.Add(rep.Bytes, big.NewInt(u.Bytes))
				rep.Events.Add(rep.Events, big.NewInt(u.Events))
			}
			if rep.Ledger, err = b.Ledger.Count(ctx, filter); err != nil {
				return err
			}
			if rep.Queue.Depth, err = b.Queue.Depth(ctx); err != nil {
				return err
			}
			if dl, ok := b.Queue.(interface {
				DeadLetters(context.Context) (int, error)
			}); ok {
				if rep.Queue.DeadLetters, err = dl.DeadLetters(ctx); err != nil {
					return err
				}
			}
			if asJSON {
				if rep.Usage == nil {
					rep.Usage = []billing.Usage{}
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printUsage(rep)
			return nil
		})
}

func printUsage(rep usageReport) {
	fmt.Printf("egress in %s\n\n", rep.Month)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CUSTOMER\tSPACE\tBYTES\tEVENTS\t")
	for _, u := range rep.Usage {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", u.Customer, u.Space, u.Bytes, u.Events)
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t\n", rep.Bytes, rep.Events)
	tw.Flush()

	fmt.Printf("\nledger (%s):", rep.Month)
	for _, s := range billing.States {
		fmt.Printf(" %s %d", s, rep.Ledger[s])
	}
	fmt.Printf("\nqueue: %d waiting or in progress, %d dead-lettered\n", rep.Queue.Depth, rep.Queue.DeadLetters)
	if rep.Ledger[billing.Unbillable]+rep.Ledger[billing.Failed] > 0 {
		fmt.Println("\nunbillable and failed events can be re-sent with `egressd billing redrive` once fixed.")
	}
	if rep.Ledger[billing.Rejected] > 0 {
		fmt.Println("\nrejected events (Stripe took them, then refused them: see `egressd billing list --state rejected`) can be re-sent with `egressd billing redrive --state rejected` once fixed.")
	}
}
