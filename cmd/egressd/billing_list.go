package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/egressd/egressd/billing"
)

func listCommand() *ffcli.Command {
	var (
		backend         backendFlags
		states          stringList
		customer, after string
		limit           int
		asJSON          bool
	)
	fs := flag.NewFlagSet("billing list", flag.ContinueOnError)
	// A report, as usage is: read-only, on a data directory that exists.
	backend.registerTables(fs)
	backend.ignoreStores(fs)
	backend.mustExist, backend.readOnly = true, true
	fs.Var(&states, "state", "show only entries in this state: pending, reported, unbillable, failed or rejected (repeatable or comma-separated); default: unbillable, failed and rejected")
	fs.StringVar(&customer, "customer", "", "show only this customer's entries (did:mailto:...); default: all customers")
	fs.IntVar(&limit, "limit", 100, "most entries to print; when more match, the last line says how many and the --after that shows them")
	fs.StringVar(&after, "after", "", "show the entries that come after this one (its CAUSE, the last of the previous page)")
	fs.BoolVar(&asJSON, "json", false, "print a JSON array of entries instead of a table (the line about more entries goes to stderr)")
	return command("list",
		"egressd billing list --data-dir DIR [--state unbillable|failed|rejected|pending|reported] [--customer did:mailto:...] [--limit N] [--after CAUSE] [--json]",
		"list ledger entries, oldest served first, with their space, batch, state and reason", fs,
		func(ctx context.Context, args []string) error {
			filter := billing.EntryFilter{Customer: customer}
			var err error
			if filter.States, err = parseStates(states); err != nil {
				return err
			}
			if len(filter.States) == 0 {
				filter.States = []billing.State{billing.Unbillable, billing.Failed, billing.Rejected}
			}
			b, err := backend.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			page, err := listPage(ctx, b.Ledger, filter, after, limit)
			if err != nil {
				return err
			}
			more := ""
			if page.more > 0 {
				more = fmt.Sprintf("%d more: add --after %s", page.more, page.entries[len(page.entries)-1].Cause)
			}
			if asJSON {
				if more != "" {
					fmt.Fprintln(os.Stderr, more)
				}
				if page.entries == nil {
					page.entries = []billing.Entry{}
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(page.entries)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVED AT\tCAUSE\tCUSTOMER\tSPACE\tBYTES\tBATCH\tSTATE\tREASON")
			for _, e := range page.entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.ServedAt.UTC().Format(time.RFC3339), e.Cause, e.Customer, e.Space, e.Bytes, e.Batch, e.State, e.Reason)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if more != "" {
				fmt.Println(more)
			}
			return nil
		})
}

// page is what billing list prints: entries in the order an operator reads
// them (served first, first), and how many more match.
type page struct {
	entries []billing.Entry
	more    int
}

// entryOrder orders entries by when they were served, then by cause, which
// is unique: the order is total, so --after resumes exactly.
func entryOrder(a, b billing.Entry) int {
	return cmp.Or(a.ServedAt.Compare(b.ServedAt), cmp.Compare(a.Cause, b.Cause))
}

// listPage returns the first limit matching entries after the entry whose
// cause is after (all when empty), in entryOrder. The ledger lists entries
// by cause only, so every matching entry is read once, a page of the ledger
// at a time, keeping no more than limit of them plus one ledger page.
func listPage(ctx context.Context, ledger billing.Ledger, filter billing.EntryFilter, after string, limit int) (page, error) {
	var cursor *billing.Entry
	if after != "" {
		err := scanEntries(ctx, ledger, filter, func(e billing.Entry) bool {
			if e.Cause == after {
				cursor = &e
			}
			return cursor == nil
		})
		if err != nil {
			return page{}, err
		}
		if cursor == nil {
			return page{}, fmt.Errorf("--after %s: no entry with that cause matches the filters", after)
		}
	}
	var p page
	err := scanEntries(ctx, ledger, filter, func(e billing.Entry) bool {
		if cursor != nil && entryOrder(e, *cursor) <= 0 {
			return true
		}
		p.entries = append(p.entries, e)
		if len(p.entries) >= 2*limit+scanPage {
			p.trim(limit)
		}
		return true
	})
	if err != nil {
		return page{}, err
	}
	p.trim(limit)
	return p, nil
}

// trim sorts the entries and keeps the first limit, counting the others.
func (p *page) trim(limit int) {
	slices.SortFunc(p.entries, entryOrder)
	if len(p.entries) > limit {
		p.more += len(p.entries) - limit
		p.entries = p.entries[:limit]
	}
}

// scanPage is how many entries one ledger call returns.
const scanPage = 1000

// scanEntries calls fn with every entry filter matches, until fn returns false.
func scanEntries(ctx context.Context, ledger billing.Ledger, filter billing.EntryFilter, fn func(billing.Entry) bool) error {
	filter.Limit = scanPage
	for {
		entries, err := ledger.Entries(ctx, filter)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !fn(e) {
				return nil
			}
		}
		if len(entries) < scanPage {
			return nil
		}
		filter.After = entries[len(entries)-1].Cause
	}
}
