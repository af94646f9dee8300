package server

import (
	"context"
	"fmt"

	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
)

// A capability is served by one registration: a Definition naming its
// parsers, how its caveats are read and the Handler that answers it. The
// server keeps what every capability shares (HTTP, the message, limits,
// audience and trusted-issuer checks, the validator, receipt signing and
// storage, metrics), so a Handler only does the capability's own work.

// Capability is one capability the server serves; a Definition is one.
// Its methods beyond Abilities are the server's, which is why it is built
// as a Definition and not implemented elsewhere.
type Capability interface {
	// Abilities are the names it is invoked under, as GET / lists them.
	Abilities() []string
	rules() rules
	serve(ctx context.Context, s *Server, can string, inv invocation.Invocation, req request) (Result, error)
}

// Handler answers one authorized invocation of a capability with caveats C.
// A failure the caller should see (a missing customer, a bad value) is a
// Result made by Fail; an error is an internal failure (a store is down),
// which fails the whole message with 503 so the client retries.
type Handler[C any] interface {
	Handle(ctx context.Context, req Request[C]) (Result, error)
}

// HandlerFunc makes a function a Handler.
type HandlerFunc[C any] func(ctx context.Context, req Request[C]) (Result, error)

// Handle calls f.
func (f HandlerFunc[C]) Handle(ctx context.Context, req Request[C]) (Result, error) {
	return f(ctx, req)
}

// Request is an invocation the validator has authorized.
type Request[C any] struct {
	Invocation invocation.Invocation
	// Capability is the authorized capability: With is its resource (for
	// a record, the space), Nb its caveats.
	Capability ucan.Capability[C]
	// Audience is the DID the invocation is addressed to: the service's
	// own or one of its aliases.
	Audience string
	// Identity names the invocation whatever its encoding (see
	// incoming.identity): the cause a success or a billing event cites.
	Identity ipld.Link
	// Customers finds the customer paying for a space, remembering what it
	// found for the rest of the message.
	Customers CustomerFinder
}

// CustomerFinder finds the customer paying for a space under any of the
// providers; customers.ErrNotFound when there is none.
type CustomerFinder interface {
	Customer(ctx context.Context, space string, providers []string) (string, error)
}

// request is what the server knows of an invocation before its capability
// is parsed: Request without the capability.
type request struct {
	audience string
	identity ipld.Link
	lookups  *customerLookups
	// blocks are the invocation's own: itself and its proofs.
	blocks blockstore.BlockReader
}

// Result is a Handler's answer: a success value, or a named failure.
type Result struct {
	// OK is the success value put in the receipt.
	OK ipld.Builder
	// Failure, when set, is put in the receipt instead.
	Failure *capabilities.Failure
	// Events are queued with the ok receipt: the receipt is returned only
	// once they are durable.
	Events []billing.Event
}

// OK is a success with the billing events it leaves behind.
func OK(value ipld.Builder, events ...billing.Event) Result {
	return Result{OK: value, Events: events}
}

// Fail is a named failure.
func Fail(f capabilities.Failure) Result { return Result{Failure: &f} }

// rules are what the server does for a capability besides validating it.
type rules struct {
	recorded, trustedOnly bool
}

// Definition is a capability with caveats of type C and everything the
// server needs to serve it.
type Definition[C any] struct {
	// Parsers validate the capability, one for each name it is served
	// under, in the order GET / lists them.
	Parsers []validator.CapabilityParser[C]
	// ReadCaveats reads the invocation's own caveats before it is
	// validated, so bad ones are reported as MalformedCapability with the
	// field named rather than inside an Unauthorized message.
	ReadCaveats func(nb any) (C, error)
	Handler     Handler[C]
	// Recorded capabilities are idempotent: an ok receipt is stored, and an
	// invocation answered before (in either of its encodings) gets that
	// answer again and queues nothing.
	Recorded bool
	// TrustedOnly capabilities may be invoked only by Config.TrustedIssuers,
	// when there are any: the gateways of the operator.
	TrustedOnly bool
}

// Abilities lists the parsers' names.
func (d *Definition[C]) Abilities() []string {
	names := make([]string, len(d.Parsers))
	for i, p := range d.Parsers {
		names[i] = p.Can()
	}
	return names
}

func (d *Definition[C]) rules() rules {
	return rules{recorded: d.Recorded, trustedOnly: d.TrustedOnly}
}

// serve reads the caveats, validates the invocation under can and hands it
// to the Handler.
func (d *Definition[C]) serve(ctx context.Context, s *Server, can string, inv invocation.Invocation, req request) (Result, error) {
	var parser validator.CapabilityParser[C]
	for _, p := range d.Parsers {
		if p.Can() == can {
			parser = p
		}
	}
	if _, err := d.ReadCaveats(inv.Capabilities()[0].Nb()); err != nil {
		return Fail(capabilities.MalformedCaveats(can, err)), nil
	}
	budget := &validationBudget{left: s.cfg.MaxValidationSteps}
	// The validator gets the proofs from the decoded-delegation cache.
	vctx := newValidationContext(s, parser, budget, s.decoded.proofResolver(req.blocks))
	auth, aerr := validator.Access(ctx, rootOnly{inv}, vctx)
	if budget.exhausted() {
		return Fail(capabilities.Failure{FailureName: "ValidationLimitExceeded",
			Message: fmt.Sprintf("validating this invocation would check more than %d delegations", s.cfg.MaxValidationSteps)}), nil
	}
	if aerr != nil {
		return refusal(aerr)
	}
	return d.Handler.Handle(ctx, Request[C]{
		Invocation: inv,
		Capability: auth.Capability(),
		Audience:   req.audience,
		Identity:   req.identity,
		Customers:  req.lookups,
	})
}
