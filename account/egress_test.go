package account_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/account"
	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/server"
)

const (
	alice = "did:mailto:example.com:alice"
	bob   = "did:mailto:example.com:bob"
)

// service is a real egressd server on 127.0.0.1 over the embedded stores,
// serving account/egress/get from the ledger's daily totals.
type service struct {
	t      *testing.T
	signer principal.Signer
	db     *embedded.DB
	client *client.Client
}

func newService(t *testing.T, now time.Time) *service {
	t.Helper()
	s := &service{t: t, signer: newKey(t)}
	db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
	egress := &account.Egress{Customers: db.Customers, Totals: db.Ledger, Providers: []string{s.signer.DID().String()}, Now: func() time.Time { return now }}
	srv, err := server.New(server.Config{
		Signer: s.signer, Customers: db.Customers, Queue: db.Queue, Receipts: db.Receipts, Journal: db,
		Capabilities: []server.Capability{egress.Capability()},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(srv)
	s.client = client.New(h.URL)
	t.Cleanup(func() {
		h.Close()
		db.Close()
	})
	return s
}

// provision makes a space paid for by customer.
func (s *service) provision(customer string) string {
	s.t.Helper()
	space := newKey(s.t).DID().String()
	if err := s.db.Customers.Provision(context.Background(), space, customer, s.signer.DID().String()); err != nil {
		s.t.Fatal(err)
	}
	return space
}

// record puts events in the ledger as the worker does.
func (s *service) record(evs ...billing.Event) {
	s.t.Helper()
	if _, _, err := s.db.Ledger.Record(context.Background(), evs, billing.BatchRule{Window: time.Minute}); err != nil {
		s.t.Fatal(err)
	}
}

// get invokes account/egress/get as agent with proofs.
func (s *service) get(agent principal.Signer, account string, nb capabilities.EgressGetCaveats, proofs ...delegation.Delegation) receipt.AnyReceipt {
	s.t.Helper()
	inv, err := client.EgressGet(agent, s.signer, mustDID(account), nb, proofs...)
	if err != nil {
		s.t.Fatal(err)
	}
	rcpts, err := s.client.Execute(context.Background(), inv)
	if err != nil {
		s.t.Fatal(err)
	}
	return rcpts[0]
}

func (s *service) grant(account string, agent principal.Signer, exp time.Time) client.Grant {
	s.t.Helper()
	g, err := client.GrantAccount(s.signer, mustDID(account), agent, nil, exp)
	if err != nil {
		s.t.Fatal(err)
	}
	return g
}

func newKey(t *testing.T) principal.Signer {
	t.Helper()
	k, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func event(customer, space string, at time.Time, bytes int64) billing.Event {
	return billing.Event{Customer: customer, Space: space, Resource: "bafkqaaa", Bytes: bytes, ServedAt: at,
		Cause: fmt.Sprintf("bafy%s%d%d", space[len(space)-8:], at.UnixNano(), bytes)}
}

// okJSON decodes a receipt's success, failing the test on a failure.
func okJSON(t *testing.T, r receipt.AnyReceipt) map[string]any {
	t.Helper()
	if name, msg := client.OutcomeFailure(r); name != "" {
		t.Fatalf("account/egress/get failed: %s: %s", name, msg)
	}
	v, err := client.View(r)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(v.Ok, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantFailure(t *testing.T, r receipt.AnyReceipt, name string) {
	t.Helper()
	if got, msg := client.OutcomeFailure(r); got != name {
		t.Fatalf("failure %q (%s), want %s", got, msg, name)
	}
}

func TestEgressGetReportsDailyTotals(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	s := newService(t, now)
	a1, a2, b1 := s.provision(alice), s.provision(alice), s.provision(bob)
	s.record(
		event(alice, a1, now.AddDate(0, 0, -20), 1000), event(alice, a1, now.AddDate(0, 0, -20).Add(time.Hour), 24),
		event(alice, a1, now, 5), event(alice, a2, now.AddDate(0, -1, -2), 7),
		event(bob, b1, now, 99),
	)
	agent := newKey(t)
	g := s.grant(alice, agent, time.Time{})

	// The default period: from the first day of last month through today.
	got := okJSON(t, s.get(agent, alice, capabilities.EgressGetCaveats{}, g.Proofs()...))
	want := map[string]any{
		"total": 1029.0,
		"spaces": map[string]any{
			a1: map[string]any{"total": 1029.0, "dailyStats": []any{
				map[string]any{"date": "2026-11-12", "egress": 1024.0},
				map[string]any{"date": "2026-12-02", "egress": 5.0},
			}},
		},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v (a2's day is before last month; b1 is bob's)", got, want)
	}

	// Both spaces over a period covering a2's day.
	got = okJSON(t, s.get(agent, alice, capabilities.EgressGetCaveats{
		Spaces: []string{a2, a1}, Period: &capabilities.EgressPeriod{From: "2026-10-01", To: "2026-11-13"},
	}, g.Proofs()...))
	if got["total"] != 1031.0 {
		t.Fatalf("total %v, want 1031 (a2's 7 and a1's 1024)", got["total"])
	}
}

func TestEgressGetFailures(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	s := newService(t, now)
	b1 := s.provision(bob)
	s.provision(alice)
	agent := newKey(t)
	g := s.grant(alice, agent, time.Time{})
	for _, tc := range []struct {
		name string
		nb   capabilities.EgressGetCaveats
		want string
	}{
		{"a space of another customer", capabilities.EgressGetCaveats{Spaces: []string{b1}}, capabilities.SpaceUnauthorizedName},
		{"an unknown space", capabilities.EgressGetCaveats{Spaces: []string{newKey(t).DID().String()}}, capabilities.SpaceUnauthorizedName},
		{"from after to", capabilities.EgressGetCaveats{Period: &capabilities.EgressPeriod{From: "2026-02-01", To: "2026-01-01"}}, capabilities.PeriodNotAcceptableName},
		{"from equal to", capabilities.EgressGetCaveats{Period: &capabilities.EgressPeriod{From: "2026-02-01", To: "2026-02-01"}}, capabilities.PeriodNotAcceptableName},
		{"over a year", capabilities.EgressGetCaveats{Period: &capabilities.EgressPeriod{From: "2025-01-01", To: "2026-01-03"}}, capabilities.PeriodNotAcceptableName},
		{"not a date", capabilities.EgressGetCaveats{Period: &capabilities.EgressPeriod{From: "2026-02-01T00:00:00Z", To: "2026-03-01"}}, capabilities.PeriodNotAcceptableName},
		{"not a space DID", capabilities.EgressGetCaveats{Spaces: []string{"did:mailto:example.com:x"}}, "MalformedCapability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, s.get(agent, alice, tc.nb, g.Proofs()...), tc.want)
		})
	}
	t.Run("an unknown account", func(t *testing.T) {
		nobody := "did:mailto:example.com:nobody"
		wantFailure(t, s.get(agent, nobody, capabilities.EgressGetCaveats{}, s.grant(nobody, agent, time.Time{}).Proofs()...), capabilities.AccountNotFoundName)
	})
}

// TestEgressGetAuthority: only the account's delegation attested by this
// service authorizes an agent, as Storacha does for did:mailto accounts.
func TestEgressGetAuthority(t *testing.T) {
	s := newService(t, time.Now())
	s.provision(alice)
	agent := newKey(t)
	g := s.grant(alice, agent, time.Time{})
	if name, msg := client.OutcomeFailure(s.get(agent, alice, capabilities.EgressGetCaveats{}, g.Proofs()...)); name != "" {
		t.Fatalf("a good grant: %s: %s", name, msg)
	}

	other := newService(t, time.Now())
	forged, err := client.GrantAccount(other.signer, mustDID(alice), agent, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bobs := s.grant(bob, agent, time.Time{})
	expired := s.grant(alice, agent, time.Now().Add(-time.Minute))
	all, err := client.GrantAccount(s.signer, mustDID(alice), agent, []string{capabilities.AccountEgressAll}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if name, msg := client.OutcomeFailure(s.get(agent, alice, capabilities.EgressGetCaveats{}, all.Proofs()...)); name != "" {
		t.Fatalf("a grant of account/egress/*: %s: %s", name, msg)
	}
	for _, tc := range []struct {
		name   string
		agent  principal.Signer
		proofs []delegation.Delegation
	}{
		{"no proof", agent, nil},
		{"the account's delegation without attestation", agent, []delegation.Delegation{g.Delegation}},
		{"attested by another service", agent, forged.Proofs()},
		{"another service's attestation of a good delegation", agent, []delegation.Delegation{g.Delegation, forged.Attestation}},
		{"a grant for another account", agent, bobs.Proofs()},
		{"an expired grant", agent, expired.Proofs()},
		{"a grant to another agent", newKey(t), g.Proofs()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, s.get(tc.agent, alice, capabilities.EgressGetCaveats{}, tc.proofs...), "Unauthorized")
		})
	}
}

func mustDID(s string) did.DID {
	d, err := did.Parse(s)
	if err != nil {
		panic(err)
	}
	return d
}
