// Package customerstest is the conformance suite every customers.Store
// passes: the embedded store and the DynamoDB store run the same tests.
package customerstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/customers"
)

// Run runs the suite. open returns an empty store; it is called once per
// subtest and owns the store's cleanup (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) customers.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s customers.Store)
	}{
		{"unknown space and customer are not found", testNotFound},
		{"provisioned space is found under its provider only", testProvision},
		{"a provider alias finds the space", testAliases},
		{"provisioning again replaces the customer", testReprovision},
		{"one space under two providers", testTwoProviders},
		{"provisioning creates a customer without an account", testProvisionCreatesCustomer},
		{"set account, change it, clear it", testSetAccount},
		{"provisioning keeps an existing account", testProvisionKeepsAccount},
		{"spaces and customers are independent", testIndependent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

const (
	service = "did:web:egress.example.com"
	alias   = "did:web:egress-legacy.example.com"
	other   = "did:web:other.example.com"
)

func testNotFound(t *testing.T, s customers.Store) {
	ctx := context.Background()
	space := newSpace(t)
	if _, err := s.Customer(ctx, space, []string{service}); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer(unknown space) = %v, want customers.ErrNotFound", err)
	}
	provision(t, s, space, newCustomer(), service)
	if _, err := s.Customer(ctx, space, nil); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer(space, no providers) = %v, want customers.ErrNotFound", err)
	}
	if _, err := s.Account(ctx, newCustomer()); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Account(unknown customer) = %v, want customers.ErrNotFound", err)
	}
}

func testProvision(t *testing.T, s customers.Store) {
	ctx := context.Background()
	space, customer := newSpace(t), newCustomer()
	provision(t, s, space, customer, service)
	if got := lookup(t, s, space, service); got != customer {
		t.Errorf("Customer = %q, want %q", got, customer)
	}
	if _, err := s.Customer(ctx, space, []string{other}); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer(space, another provider) = %v, want customers.ErrNotFound", err)
	}
}

func testAliases(t *testing.T, s customers.Store) {
	space, customer := newSpace(t), newCustomer()
	provision(t, s, space, customer, alias)
	if got := lookup(t, s, space, service, alias); got != customer {
		t.Errorf("Customer(space, [service, alias]) = %q, want %q", got, customer)
	}
	if got := lookup(t, s, space, other, alias, service); got != customer {
		t.Errorf("Customer(space, [other, alias, service]) = %q, want %q", got, customer)
	}
}

func testReprovision(t *testing.T, s customers.Store) {
	space, first, second := newSpace(t), newCustomer(), newCustomer()
	provision(t, s, space, first, service)
	provision(t, s, space, second, service)
	if got := lookup(t, s, space, service); got != second {
		t.Errorf("Customer after re-provisioning = %q, want %q", got, second)
	}
	// The first customer's record stays.
	if acct := account(t, s, first); acct != "" {
		t.Errorf("Account(first customer) = %q, want \"\"", acct)
	}
}

func testTwoProviders(t *testing.T, s customers.Store) {
	space, c1, c2 := newSpace(t), newCustomer(), newCustomer()
	provision(t, s, space, c1, service)
	provision(t, s, space, c2, other)
	if got := lookup(t, s, space, service); got != c1 {
		t.Errorf("Customer(space, service) = %q, want %q", got, c1)
	}
	if got := lookup(t, s, space, other); got != c2 {
		t.Errorf("Customer(space, other) = %q, want %q", got, c2)
	}
}

func testProvisionCreatesCustomer(t *testing.T, s customers.Store) {
	space, customer := newSpace(t), newCustomer()
	provision(t, s, space, customer, service)
	if acct := account(t, s, customer); acct != "" {
		t.Errorf("Account(new customer) = %q, want \"\" (free tier)", acct)
	}
}

func testSetAccount(t *testing.T, s customers.Store) {
	customer := newCustomer()
	setAccount(t, s, customer, "stripe:cus_first")
	if acct := account(t, s, customer); acct != "stripe:cus_first" {
		t.Errorf("Account = %q, want stripe:cus_first", acct)
	}
	setAccount(t, s, customer, "stripe:cus_second")
	if acct := account(t, s, customer); acct != "stripe:cus_second" {
		t.Errorf("Account after change = %q, want stripe:cus_second", acct)
	}
	setAccount(t, s, customer, "")
	if acct := account(t, s, customer); acct != "" {
		t.Errorf("Account after clearing = %q, want \"\"", acct)
	}
}

func testProvisionKeepsAccount(t *testing.T, s customers.Store) {
	space, customer := newSpace(t), newCustomer()
	setAccount(t, s, customer, "stripe:cus_keep")
	provision(t, s, space, customer, service)
	provision(t, s, newSpace(t), customer, alias)
	if acct := account(t, s, customer); acct != "stripe:cus_keep" {
		t.Errorf("Account after provisioning = %q, want stripe:cus_keep", acct)
	}
}

func testIndependent(t *testing.T, s customers.Store) {
	type pair struct{ space, customer string }
	pairs := make([]pair, 5)
	for i := range pairs {
		pairs[i] = pair{newSpace(t), newCustomer()}
		provision(t, s, pairs[i].space, pairs[i].customer, service)
		setAccount(t, s, pairs[i].customer, "stripe:cus_"+pairs[i].customer[len(pairs[i].customer)-20:])
	}
	for _, p := range pairs {
		if got := lookup(t, s, p.space, service); got != p.customer {
			t.Errorf("Customer(%s) = %q, want %q", p.space, got, p.customer)
		}
		if got, want := account(t, s, p.customer), "stripe:cus_"+p.customer[len(p.customer)-20:]; got != want {
			t.Errorf("Account(%s) = %q, want %q", p.customer, got, want)
		}
	}
}

func provision(t *testing.T, s customers.Store, space, customer, provider string) {
	t.Helper()
	if err := s.Provision(context.Background(), space, customer, provider); err != nil {
		t.Fatalf("Provision(%s, %s, %s): %v", space, customer, provider, err)
	}
}

func setAccount(t *testing.T, s customers.Store, customer, acct string) {
	t.Helper()
	if err := s.SetAccount(context.Background(), customer, acct); err != nil {
		t.Fatalf("SetAccount(%s, %q): %v", customer, acct, err)
	}
}

func lookup(t *testing.T, s customers.Store, space string, providers ...string) string {
	t.Helper()
	c, err := s.Customer(context.Background(), space, providers)
	if err != nil {
		t.Fatalf("Customer(%s, %v): %v", space, providers, err)
	}
	return c
}

func account(t *testing.T, s customers.Store, customer string) string {
	t.Helper()
	a, err := s.Account(context.Background(), customer)
	if err != nil {
		t.Fatalf("Account(%s): %v", customer, err)
	}
	return a
}

// newSpace returns a fresh space DID (a did:key, as real spaces are).
func newSpace(t *testing.T) string {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s.DID().String()
}

// newCustomer returns a fresh did:mailto customer.
func newCustomer() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "did:mailto:example.com:" + hex.EncodeToString(b)
}
