package account_test

import (
	"context"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
)

// BenchmarkEgressGetYear answers account/egress/get over HTTP for a year of
// days: one space of a customer with 20 spaces (a range read of one space),
// and all 20 (one range of the customer). Every day of every space served.
//
//	go test -run '^$' -bench EgressGetYear -benchtime 200x ./account/
func BenchmarkEgressGetYear(b *testing.B) {
	t := &testing.T{}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := newService(t, now)
	b.Cleanup(func() { s.db.Close() })
	spaces := make([]string, 20)
	for i := range spaces {
		spaces[i] = s.provision(alice)
	}
	start := now.AddDate(-1, 0, 0)
	var evs []billing.Event
	for d := 0; d < 366; d++ {
		for _, sp := range spaces {
			evs = append(evs, event(alice, sp, start.AddDate(0, 0, d), int64(1000+d)))
		}
	}
	if _, _, err := s.db.Ledger.Record(context.Background(), evs, billing.BatchRule{Window: time.Minute}); err != nil {
		b.Fatal(err)
	}
	agent := newKey(t)
	g := s.grant(alice, agent, time.Time{})
	period := &capabilities.EgressPeriod{From: start.Format(time.DateOnly), To: now.AddDate(0, 0, 1).Format(time.DateOnly)}
	for _, bc := range []struct {
		name string
		nb   capabilities.EgressGetCaveats
		days int
	}{
		{"one space", capabilities.EgressGetCaveats{Spaces: spaces[:1], Period: period}, 366},
		{"20 spaces", capabilities.EgressGetCaveats{Period: period}, 20 * 366},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				r := s.get(agent, alice, bc.nb, g.Proofs()...)
				if got := okJSON(t, r); len(got) == 0 || t.Failed() {
					b.Fatal("no answer")
				}
			}
			b.ReportMetric(float64(bc.days), "days/op")
		})
	}
}
