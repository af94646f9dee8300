// Package revocations keeps the delegations revoked with ucan/revoke, so that
// the server can refuse every delegation chain that holds one of them.
//
// A revocation is recorded against the revoked delegation's CID together
// with its scope, the principal that revoked it, as w3up records them: the
// validator applies a revocation to a chain only when its scope has
// authority over the delegation in that chain (see server/revoke.go), so a
// row written by somebody else's service into a shared table cannot revoke
// what its author had no say over.
package revocations

import "context"

// Revocation is one principal's revocation of one delegation.
type Revocation struct {
	// Delegation is the CID of the revoked delegation.
	Delegation string
	// Scope is the DID of the principal that revoked it.
	Scope string
	// Cause is the CID of the ucan/revoke invocation that revoked it.
	Cause string
}

// Store records revocations and finds them.
type Store interface {
	// Revoke records r durably before it returns. Revoking a delegation
	// again with the same scope changes nothing: the first cause is kept.
	Revoke(ctx context.Context, r Revocation) error
	// Revocations returns every revocation recorded against any of the
	// delegations (CIDs), in no particular order; none is not an error.
	// The validator asks about a whole chain at once, so a store answers a
	// list in one round trip where it can.
	Revocations(ctx context.Context, delegations []string) ([]Revocation, error)
}
