package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/egressd/egressd/billing"
)

// deadLettersReport is what billing dead-letters prints with --json.
type deadLettersReport struct {
	// Count is every dead letter, DeadLetters the ones listed (--limit).
	Count       int                  `json:"count"`
	DeadLetters []billing.DeadLetter `json:"deadLetters"`
	// Requeued is how many went back on the queue (with --requeue or --id).
	Requeued int `json:"requeued"`
}

func deadLettersCommand() *ffcli.Command {
	var (
		backend backendFlags
		requeue bool
		ids     stringList
		limit   int
		asJSON  bool
	)
	fs := flag.NewFlagSet("billing dead-letters", flag.ContinueOnError)
	backend.register(fs)
	fs.BoolVar(&requeue, "requeue", false, "move every dead letter back onto the queue, to be billed afresh (the ledger counts each event once, so requeueing one billed already is harmless)")
	fs.Var(&ids, "id", "move only the dead letter with this ID back onto the queue (repeatable or comma-separated)")
	fs.IntVar(&limit, "limit", 100, "most dead letters to list")
	fs.BoolVar(&asJSON, "json", false, "print JSON {count, deadLetters, requeued} instead of a table")
	return command("dead-letters",
		"egressd billing dead-letters --data-dir DIR | --queue sqs://NAME [--requeue | --id ID] [--json]",
		"list the queue's dead letters (events set aside after too many deliveries) and requeue them", fs,
		func(ctx context.Context, args []string) error {
			// The embedded queue: a mistyped --data-dir must not create an
			// empty directory and report no dead letters.
			if backend.queue == "" {
				if info, err := os.Stat(backend.dataDir); err != nil || !info.IsDir() {
					return fmt.Errorf("no data directory at %s: check --data-dir", backend.dataDir)
				}
			}
			bs, err := backends.Open(ctx, backend.locations(), backend.config())
			if err != nil {
				return err
			}
			defer bs.Close()
			queue, err := bs.Queue(ctx)
			if err != nil {
				return err
			}
			dlq, ok := queue.(billing.DeadLetterQueue)
			if !ok {
				return fmt.Errorf("the queue (%T) keeps no dead letters egressd can list", queue)
			}
			var rep deadLettersReport
			if chosen := splitList(ids); requeue || len(chosen) > 0 {
				if requeue && len(chosen) > 0 {
					return fmt.Errorf("--requeue moves every dead letter; --id only the ones named: give one of them")
				}
				// Requeue first, then list what is left: the list an
				// operator sees is what still needs them.
				if rep.Requeued, err = dlq.Requeue(ctx, chosen); err != nil {
					return err
				}
				if len(chosen) > 0 && rep.Requeued < len(chosen) {
					fmt.Fprintf(os.Stderr, "egressd: %d of the %d IDs named were not dead letters\n", len(chosen)-rep.Requeued, len(chosen))
				}
			}
			if rep.Count, err = dlq.DeadLetters(ctx); err != nil {
				return err
			}
			if rep.DeadLetters, err = dlq.ListDeadLetters(ctx, limit); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printDeadLetters(rep, requeue || len(ids) > 0)
			return nil
		})
}

func printDeadLetters(rep deadLettersReport, requeued bool) {
	if requeued {
		fmt.Printf("requeued %d\n", rep.Requeued)
	}
	fmt.Printf("%d dead letters", rep.Count)
	if len(rep.DeadLetters) < rep.Count {
		fmt.Printf(" (the first %d below)", len(rep.DeadLetters))
	}
	fmt.Println()
	if len(rep.DeadLetters) == 0 {
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVES\tENQUEUED\tCAUSE\tCUSTOMER\tBYTES\tSERVED AT\tPROBLEM")
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, d := range rep.DeadLetters {
		if d.Event == nil {
			fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t-\t%s: %q\n", d.ID, d.Receives, at(d.EnqueuedAt), d.Problem, d.Body)
			continue
		}
		e := d.Event
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t\n", d.ID, d.Receives, at(d.EnqueuedAt), e.Cause, e.Customer, e.Bytes, at(e.ServedAt))
	}
	tw.Flush()
}
