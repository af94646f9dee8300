package server

import (
	"context"

	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/capabilities"
)

// Revocations is what the server needs of a revocation store.
// (Placeholder: the revocation work replaces this file.)
type Revocations interface{}

// checkRevoked is the validator's revocation check for every delegation in a chain.
func (s *Server) checkRevoked(ctx context.Context, auth validator.Authorization[any]) validator.Revoked {
	return nil
}

// runRevoke executes a ucan/revoke invocation.
func (s *Server) runRevoke(ctx context.Context, inv invocation.Invocation) outcome {
	return s.fail(inv, "ucan/revoke", capabilities.Failure{FailureName: "HandlerNotFound", Message: "ucan/revoke is not served"})
}
