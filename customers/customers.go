// Package customers answers "who pays for this space": space + provider ->
// consumer record -> customer (did:mailto) -> payment account (stripe:cus_...).
//
// The records are laid out as Storacha's consumer, subscription and customer
// tables (storacha/w3infra) and written by Storacha's rules, so the stores
// can run on those tables in place: a space, once provisioned, is never
// moved to another customer or provider, and a customer record always names
// a product.
package customers

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFound means there is no record for the space or customer asked for.
var ErrNotFound = errors.New("customers: not found")

// ErrAlreadyProvisioned means a space is provisioned already, for another
// customer or under another provider; the error is an *AlreadyProvisionedError.
var ErrAlreadyProvisioned = errors.New("customers: space already provisioned")

// ErrNoProduct means a customer record would have no product: Storacha's
// decoders reject such a record, so it is neither created nor relied on.
var ErrNoProduct = errors.New("customers: customer has no product")

// ErrProductMismatch means a customer record names another product than the
// one asked for; a customer's product is never changed here.
var ErrProductMismatch = errors.New("customers: customer has another product")

// DefaultProduct is the product of a customer record egressd creates when
// none is named (outside Storacha's tables): Storacha's free plan, a product
// Storacha's own code knows, so such a record stays one Storacha accepts.
// egressd itself never reads a customer's product.
const DefaultProduct = "did:web:free.storacha.network"

// Store is the customer lookup and its writes.
type Store interface {
	// Customer finds the customer paying for space under any of the providers
	// (the service DID and its aliases). ErrNotFound when there is none.
	Customer(ctx context.Context, space string, providers []string) (string, error)
	// Account returns the customer's payment account ("stripe:cus_..."), or ""
	// when the customer exists but has none (a free-tier customer).
	// ErrNotFound when the customer is unknown.
	Account(ctx context.Context, customer string) (string, error)
	// Provision is ProvisionSpace with DefaultProduct for a new customer.
	Provision(ctx context.Context, space, customer, provider string) error
	// ProvisionSpace records that p.Customer pays for p.Space under
	// p.Provider. Doing so again is a no-op; a space provisioned for another
	// customer or under another provider is left as it is and the answer is
	// an *AlreadyProvisionedError (errors.Is ErrAlreadyProvisioned).
	ProvisionSpace(ctx context.Context, p Provisioning) error
	// SetAccount is SetCustomer with DefaultProduct for a new customer.
	SetAccount(ctx context.Context, customer, account string) error
	// SetCustomer sets a customer's payment account, creating the customer
	// if needed, and returns the record as it now is.
	SetCustomer(ctx context.Context, u CustomerUpdate) (Record, error)
}

// Provisioning is one space provisioned for a customer.
type Provisioning struct {
	Space    string // did:key
	Customer string // did:mailto
	Provider string // the service DID the space is provisioned under
	// NewCustomerProduct is the product of the customer record created when
	// the customer has none, and fills in a record without product. Empty
	// creates nothing: the customer must have a record with a product
	// (ErrNoProduct otherwise), as Storacha's provider/add never creates
	// customers and requires a plan.
	NewCustomerProduct string
}

// CustomerUpdate is what SetCustomer writes.
type CustomerUpdate struct {
	Customer string // did:mailto
	// Account is "stripe:cus_...", or "" for none (a free-tier customer).
	Account string
	// Product, when set, is the customer's product: it goes into a record
	// that has none, and a record with another one is left as it is
	// (ErrProductMismatch).
	Product string
	// DefaultProduct goes into a record that has no product when Product is
	// empty. With both empty such a record is refused (ErrNoProduct).
	DefaultProduct string
}

// Record is a customer's record.
type Record struct {
	Customer string
	Account  string // "" for none
	Product  string
}

// AlreadyProvisionedError names who holds a space that was asked to be
// provisioned again for someone else or under another provider.
type AlreadyProvisionedError struct {
	Space string
	// Customer and Provider hold the space now.
	Customer, Provider string
	// Table is where the record was found: "consumer" or "subscription".
	Table string
}

func (e *AlreadyProvisionedError) Error() string {
	return fmt.Sprintf("space %s is already provisioned for %s under %s (%s record)", e.Space, e.Customer, e.Provider, e.Table)
}

// Is makes errors.Is(err, ErrAlreadyProvisioned) true.
func (e *AlreadyProvisionedError) Is(target error) bool { return target == ErrAlreadyProvisioned }

// CheckHolder is the rule both stores apply to a record found for a space:
// nil when it is the provisioning asked for (customer and provider alike),
// an *AlreadyProvisionedError otherwise.
func CheckHolder(p Provisioning, customer, provider, table string) error {
	if customer == p.Customer && provider == p.Provider {
		return nil
	}
	return &AlreadyProvisionedError{Space: p.Space, Customer: customer, Provider: provider, Table: table}
}
