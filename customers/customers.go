// Package customers answers "who pays for this space": space + provider ->
// consumer record -> customer (did:mailto) -> payment account (stripe:cus_...).
package customers

import (
	"context"
	"errors"
)

// ErrNotFound means there is no record for the space or customer asked for.
var ErrNotFound = errors.New("customers: not found")

// Store is the customer lookup and its two writes.
type Store interface {
	// Customer finds the customer paying for space under any of the providers
	// (the service DID and its aliases). ErrNotFound when there is none.
	Customer(ctx context.Context, space string, providers []string) (string, error)
	// Account returns the customer's payment account ("stripe:cus_..."), or ""
	// when the customer exists but has none (a free-tier customer).
	// ErrNotFound when the customer is unknown.
	Account(ctx context.Context, customer string) (string, error)
	// Provision records that customer pays for space under provider.
	Provision(ctx context.Context, space, customer, provider string) error
	// SetAccount sets the customer's payment account, creating the customer if needed.
	SetAccount(ctx context.Context, customer, account string) error
}
