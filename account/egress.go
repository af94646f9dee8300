// Package account answers what a customer asks about its own account over
// UCAN: account/egress/get, the egress of its spaces per UTC day, read from
// the daily totals the billing ledger keeps. The server validates the
// invocation (the account's delegation to the agent, attested by this
// service) before the handler runs.
package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/server"
)

// DailyTotals reads the ledger's daily totals (billing.Ledger has it).
type DailyTotals interface {
	Daily(ctx context.Context, f billing.DailyFilter) ([]billing.DailyUsage, error)
}

// Egress answers account/egress/get.
type Egress struct {
	Customers customers.Store
	Totals    DailyTotals
	// Providers are the service's DIDs: a listed space is the account's when
	// its consumer record under one of them names the account.
	Providers []string
	// Now is the clock for the default period; nil is time.Now.
	Now func() time.Time
}

// Capability registers account/egress/get with the server.
func (e *Egress) Capability() server.Capability {
	return &server.Definition[capabilities.EgressGetCaveats]{
		Parsers:     []validator.CapabilityParser[capabilities.EgressGetCaveats]{capabilities.EgressGet},
		ReadCaveats: capabilities.ReadEgressGetCaveats,
		Handler:     e,
	}
}

// Handle reports the egress of the account's spaces in the period.
func (e *Egress) Handle(ctx context.Context, req server.Request[capabilities.EgressGetCaveats]) (server.Result, error) {
	account := req.Capability.With()
	nb := req.Capability.Nb()
	from, to, err := e.period(nb.Period)
	if err != nil {
		return server.Fail(capabilities.PeriodNotAcceptable(err.Error())), nil
	}
	if _, err := e.Customers.Account(ctx, account); errors.Is(err, customers.ErrNotFound) {
		return server.Fail(capabilities.AccountNotFound(account)), nil
	} else if err != nil {
		return server.Result{}, fmt.Errorf("looking up account %s: %w", account, err)
	}
	for _, space := range nb.Spaces {
		payer, err := e.Customers.Customer(ctx, space, e.Providers)
		if errors.Is(err, customers.ErrNotFound) || (err == nil && payer != account) {
			return server.Fail(capabilities.SpaceUnauthorized(account, space)), nil
		}
		if err != nil {
			return server.Result{}, fmt.Errorf("looking up the customer of %s: %w", space, err)
		}
	}
	days, err := e.Totals.Daily(ctx, billing.DailyFilter{Customer: account, Spaces: nb.Spaces, From: from, To: to})
	if err != nil {
		return server.Result{}, fmt.Errorf("reading the daily egress of %s: %w", account, err)
	}
	return server.OK(report(days, nb.Spaces)), nil
}

// report gathers the days into the success value: every listed space (with
// no days when it served nothing), or every space with egress when none is
// listed; days oldest first.
func report(days []billing.DailyUsage, listed []string) capabilities.EgressGetOK {
	out := capabilities.EgressGetOK{Spaces: capabilities.SpaceEgressMap{Values: map[string]capabilities.SpaceEgress{}}}
	for _, s := range listed {
		if _, ok := out.Spaces.Values[s]; !ok {
			out.Spaces.Keys = append(out.Spaces.Keys, s)
			out.Spaces.Values[s] = capabilities.SpaceEgress{DailyStats: []capabilities.DailyStats{}}
		}
	}
	for _, d := range days {
		se, ok := out.Spaces.Values[d.Space]
		if !ok {
			if len(listed) > 0 {
				continue
			}
			out.Spaces.Keys = append(out.Spaces.Keys, d.Space)
		}
		se.Total += d.Bytes
		se.DailyStats = append(se.DailyStats, capabilities.DailyStats{Date: d.Day, Egress: d.Bytes})
		out.Spaces.Values[d.Space] = se
		out.Total += d.Bytes
	}
	slices.Sort(out.Spaces.Keys)
	for _, se := range out.Spaces.Values {
		slices.SortFunc(se.DailyStats, func(a, b capabilities.DailyStats) int { return strings.Compare(a.Date, b.Date) })
	}
	return out
}

// period reads nb.period, or makes the default Storacha's console expects:
// from the first day of the last complete month through today (to is
// tomorrow, exclusive).
func (e *Egress) period(p *capabilities.EgressPeriod) (from, to time.Time, err error) {
	if p == nil {
		now := time.Now
		if e.Now != nil {
			now = e.Now
		}
		today := now().UTC().Truncate(24 * time.Hour)
		from = time.Date(today.Year(), today.Month()-1, 1, 0, 0, 0, 0, time.UTC)
		return from, today.AddDate(0, 0, 1), nil
	}
	if from, err = time.Parse(capabilities.DayLayout, p.From); err != nil {
		return from, to, fmt.Errorf("period.from %q is not a date (YYYY-MM-DD)", p.From)
	}
	if to, err = time.Parse(capabilities.DayLayout, p.To); err != nil {
		return from, to, fmt.Errorf("period.to %q is not a date (YYYY-MM-DD)", p.To)
	}
	if !from.Before(to) {
		return from, to, fmt.Errorf("period.from %s is not before period.to %s", p.From, p.To)
	}
	if days := to.Sub(from) / (24 * time.Hour); days > capabilities.MaxEgressPeriodDays {
		return from, to, fmt.Errorf("the period is %d days, more than the %d one request may cover", days, capabilities.MaxEgressPeriodDays)
	}
	return from, to, nil
}
