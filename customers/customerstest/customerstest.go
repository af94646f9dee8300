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
		{"provisioning again is a no-op", testReprovisionSame},
		{"a space is never moved to another customer", testNeverReassigned},
		{"a space has one provider", testOneProvider},
		{"provisioning creates a customer with the default product", testProvisionCreatesCustomer},
		{"provisioning without a product needs a customer that has one", testProvisionNeedsProduct},
		{"set account, change it, clear it", testSetAccount},
		{"provisioning keeps an existing account", testProvisionKeepsAccount},
		{"a customer's product is kept", testProductKept},
		{"a new customer needs a product", testNewCustomerNeedsProduct},
		{"spaces and customers are independent", testIndependent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// Two of Storacha's products (w3infra billing/lib/product-info.js).
const (
	starter = "did:web:starter.storacha.network"
	lite    = "did:web:lite.storacha.network"
)

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

func testReprovisionSame(t *testing.T, s customers.Store) {
	space, customer := newSpace(t), newCustomer()
	provision(t, s, space, customer, service)
	provision(t, s, space, customer, service)
	if got := lookup(t, s, space, service); got != customer {
		t.Errorf("Customer after provisioning twice = %q, want %q", got, customer)
	}
}

func testNeverReassigned(t *testing.T, s customers.Store) {
	space, first, second := newSpace(t), newCustomer(), newCustomer()
	provision(t, s, space, first, service)
	err := s.Provision(context.Background(), space, second, service)
	wantHeldBy(t, err, space, first, service)
	if got := lookup(t, s, space, service); got != first {
		t.Errorf("Customer after a refused provisioning = %q, want %q (unchanged)", got, first)
	}
	// The refused customer was not created either.
	if _, err := s.Account(context.Background(), second); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Account(refused customer) = %v, want customers.ErrNotFound", err)
	}
}

func testOneProvider(t *testing.T, s customers.Store) {
	ctx := context.Background()
	space, c1, c2 := newSpace(t), newCustomer(), newCustomer()
	provision(t, s, space, c1, service)
	wantHeldBy(t, s.Provision(ctx, space, c1, other), space, c1, service)
	wantHeldBy(t, s.Provision(ctx, space, c2, other), space, c1, service)
	if _, err := s.Customer(ctx, space, []string{other}); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer(space, other provider) = %v, want customers.ErrNotFound", err)
	}
	if got := lookup(t, s, space, other, service); got != c1 {
		t.Errorf("Customer(space, [other, service]) = %q, want %q", got, c1)
	}
}

// wantHeldBy checks err says space is held by customer under provider.
func wantHeldBy(t *testing.T, err error, space, customer, provider string) {
	t.Helper()
	if !errors.Is(err, customers.ErrAlreadyProvisioned) {
		t.Fatalf("Provision of a space held by %s = %v, want customers.ErrAlreadyProvisioned", customer, err)
	}
	var held *customers.AlreadyProvisionedError
	if !errors.As(err, &held) {
		t.Fatalf("Provision error %v is not a *customers.AlreadyProvisionedError", err)
	}
	if held.Space != space || held.Customer != customer || held.Provider != provider {
		t.Errorf("AlreadyProvisionedError = %+v, want space %s held by %s under %s", held, space, customer, provider)
	}
}

func testProvisionCreatesCustomer(t *testing.T, s customers.Store) {
	space, customer := newSpace(t), newCustomer()
	provision(t, s, space, customer, service)
	if acct := account(t, s, customer); acct != "" {
		t.Errorf("Account(new customer) = %q, want \"\" (free tier)", acct)
	}
	if got := product(t, s, customer); got != customers.DefaultProduct {
		t.Errorf("product of a customer Provision created = %q, want %s", got, customers.DefaultProduct)
	}
}

func testProvisionNeedsProduct(t *testing.T, s customers.Store) {
	ctx := context.Background()
	space, customer := newSpace(t), newCustomer()
	p := customers.Provisioning{Space: space, Customer: customer, Provider: service}
	if err := s.ProvisionSpace(ctx, p); !errors.Is(err, customers.ErrNoProduct) {
		t.Fatalf("ProvisionSpace(unknown customer, no product) = %v, want customers.ErrNoProduct", err)
	}
	if _, err := s.Customer(ctx, space, []string{service}); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer after a refused provisioning = %v, want customers.ErrNotFound", err)
	}
	if _, err := s.Account(ctx, customer); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Account after a refused provisioning = %v, want customers.ErrNotFound", err)
	}
	setCustomer(t, s, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_plan", Product: starter})
	if err := s.ProvisionSpace(ctx, p); err != nil {
		t.Fatalf("ProvisionSpace(customer with a product, no product) = %v", err)
	}
	if got := lookup(t, s, space, service); got != customer {
		t.Errorf("Customer = %q, want %q", got, customer)
	}
	if got, acct := product(t, s, customer), account(t, s, customer); got != starter || acct != "stripe:cus_plan" {
		t.Errorf("customer after provisioning = %s, %s; want %s, stripe:cus_plan", got, acct, starter)
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

func testProductKept(t *testing.T, s customers.Store) {
	ctx := context.Background()
	customer := newCustomer()
	if r := setCustomer(t, s, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_a", Product: starter}); r.Product != starter || r.Account != "stripe:cus_a" {
		t.Errorf("SetCustomer(new, %s) = %+v", starter, r)
	}
	setAccount(t, s, customer, "stripe:cus_b")
	if r := setCustomer(t, s, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_c", DefaultProduct: customers.DefaultProduct}); r.Product != starter || r.Account != "stripe:cus_c" {
		t.Errorf("SetCustomer with a default product = %+v, want product %s kept", r, starter)
	}
	if r := setCustomer(t, s, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_d", Product: starter}); r.Product != starter || r.Account != "stripe:cus_d" {
		t.Errorf("SetCustomer(same product) = %+v", r)
	}
	_, err := s.SetCustomer(ctx, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_e", Product: lite})
	if !errors.Is(err, customers.ErrProductMismatch) {
		t.Errorf("SetCustomer(another product) = %v, want customers.ErrProductMismatch", err)
	}
	if got, acct := product(t, s, customer), account(t, s, customer); got != starter || acct != "stripe:cus_d" {
		t.Errorf("customer after a refused SetCustomer = %s, %s; want %s, stripe:cus_d (unchanged)", got, acct, starter)
	}
}

func testNewCustomerNeedsProduct(t *testing.T, s customers.Store) {
	ctx := context.Background()
	customer := newCustomer()
	if _, err := s.SetCustomer(ctx, customers.CustomerUpdate{Customer: customer, Account: "stripe:cus_x"}); !errors.Is(err, customers.ErrNoProduct) {
		t.Errorf("SetCustomer(new customer, no product) = %v, want customers.ErrNoProduct", err)
	}
	if _, err := s.Account(ctx, customer); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Account after a refused SetCustomer = %v, want customers.ErrNotFound", err)
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

func setCustomer(t *testing.T, s customers.Store, u customers.CustomerUpdate) customers.Record {
	t.Helper()
	r, err := s.SetCustomer(context.Background(), u)
	if err != nil {
		t.Fatalf("SetCustomer(%+v): %v", u, err)
	}
	return r
}

// product reads the customer's product through SetCustomer, rewriting the
// account it has (there is no read of products).
func product(t *testing.T, s customers.Store, customer string) string {
	t.Helper()
	return setCustomer(t, s, customers.CustomerUpdate{Customer: customer, Account: account(t, s, customer)}).Product
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
