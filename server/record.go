package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/receipt/ran"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
)

// outcome is what running one invocation produced.
type outcome struct {
	receipt receipt.AnyReceipt
	// event is set for a new, successful record: it must be queued before
	// receipt is stored or returned.
	event *billing.Event
	// capability and result label the invocation in metrics.
	capability, result string
	// err is an internal failure (a store is down): the whole message fails
	// with 503 so the gateway retries, instead of a receipt blaming the caller.
	err error
}

// run validates and executes one invocation. It never panics: a panic in a
// decoder or validator on hostile input becomes a failure receipt.
func (s *Server) run(ctx context.Context, item incoming, lookups *customerLookups) (o outcome) {
	o.capability = "unknown"
	if item.refused != nil {
		return s.failLink(item.link, o.capability, *item.refused)
	}
	inv := item.inv
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("panic while running invocation", "invocation", inv.Link(), "panic", r)
			o = s.failLink(inv.Link(), o.capability, capabilities.Failure{FailureName: "InvalidInvocation", Message: "the invocation could not be processed"})
		}
	}()

	caps := inv.Capabilities()
	if len(caps) != 1 {
		return s.fail(inv, o.capability, capabilities.Failure{FailureName: "InvocationCapabilityError",
			Message: fmt.Sprintf("an invocation must hold exactly one capability, this one holds %d", len(caps))})
	}
	can := caps[0].Can()
	if can == capabilities.UcanRevoke {
		o = s.runRevoke(ctx, inv)
		return o
	}
	parser, ok := capabilities.Parsers[can]
	if !ok {
		return s.fail(inv, o.capability, capabilities.Failure{FailureName: "HandlerNotFound",
			Message: fmt.Sprintf("this service does not provide %q; it provides %s", can, strings.Join(s.served(), ", "))})
	}
	o.capability = can

	// An invocation recorded before gets its stored receipt back and queues nothing.
	stored, err := s.cfg.Receipts.Get(ctx, inv.Link().String())
	switch {
	case err == nil:
		o.receipt, o.result = stored, "duplicate"
		return o
	case !errors.Is(err, receipts.ErrNotFound):
		o.err = err
		return o
	}
	// So does its other encoding, once validated: its receipt names the
	// recorded invocation as the cause, and is not stored.
	var recordedAs ipld.Link
	if item.twin != nil {
		_, err := s.cfg.Receipts.Get(ctx, item.twin.String())
		switch {
		case err == nil:
			recordedAs = item.twin
		case !errors.Is(err, receipts.ErrNotFound):
			o.err = err
			return o
		}
	}

	audience := inv.Audience().DID().String()
	if !slices.Contains(s.audiences, audience) {
		return s.fail(inv, can, capabilities.Failure{FailureName: "InvalidAudience",
			Message: fmt.Sprintf("invocation is addressed to %s, this service is %v", audience, s.audiences)})
	}

	if s.trusted != nil && !s.trusted[inv.Issuer().DID().String()] {
		return s.fail(inv, can, capabilities.Failure{FailureName: "UntrustedIssuer",
			Message: fmt.Sprintf("%s is not a trusted gateway of this service", inv.Issuer().DID())})
	}

	// Check the caveats first: the validator would report bad ones buried
	// in an Unauthorized message.
	if _, err := capabilities.ReadCaveats(caps[0].Nb()); err != nil {
		return s.fail(inv, can, capabilities.MalformedCaveats(can, err))
	}

	budget := &validationBudget{left: s.cfg.MaxValidationSteps}
	auth, aerr := validator.Access(ctx, inv, newValidationContext(s, parser, budget))
	if budget.exhausted() {
		return s.fail(inv, can, capabilities.Failure{FailureName: "ValidationLimitExceeded",
			Message: fmt.Sprintf("validating this invocation would check more than %d delegations", s.cfg.MaxValidationSteps)})
	}
	if aerr != nil {
		return s.refuse(inv, can, aerr)
	}
	space := auth.Capability().With()
	nb := auth.Capability().Nb()

	if nb.Bytes > s.cfg.MaxBytesPerEvent {
		return s.fail(inv, can, capabilities.Failure{FailureName: "BytesOutOfRange",
			Message: fmt.Sprintf("bytes %d is more than the %d one event may record", nb.Bytes, s.cfg.MaxBytesPerEvent)})
	}

	now := s.cfg.Now()
	servedAt := nb.ServedTime()
	if servedAt.After(now.Add(s.cfg.MaxAhead)) || servedAt.Before(now.Add(-s.cfg.MaxAge)) {
		return s.fail(inv, can, capabilities.ServedAtOutOfRange(servedAt, now, s.cfg.MaxAge, s.cfg.MaxAhead))
	}

	providers := append([]string{audience}, s.audiences...)
	customer, err := lookups.customer(ctx, space, providers)
	if errors.Is(err, customers.ErrNotFound) {
		return s.fail(inv, can, capabilities.ConsumerNotFound(space))
	}
	if err != nil {
		o.err = fmt.Errorf("looking up the customer of %s: %w", space, err)
		return o
	}

	if recordedAs != nil {
		success := capabilities.NewRecordOK(space, nb, item.identity)
		o.receipt, o.err = receipt.Issue(s.cfg.Signer, result.Ok[capabilities.RecordOK, capabilities.Failure](success), ran.FromInvocation(inv))
		o.result = "duplicate"
		return o
	}
	success := capabilities.NewRecordOK(space, nb, item.identity)
	rcpt, err := receipt.Issue(s.cfg.Signer, result.Ok[capabilities.RecordOK, capabilities.Failure](success), ran.FromInvocation(inv))
	if err != nil {
		o.err = fmt.Errorf("signing receipt: %w", err)
		return o
	}
	o.receipt, o.result = rcpt, "ok"
	o.event = &billing.Event{
		Space:    space,
		Customer: customer,
		Resource: nb.Resource.String(),
		Bytes:    nb.Bytes,
		ServedAt: servedAt,
		Cause:    item.identity.String(),
	}
	return o
}

// customerLookups remembers, for one message, the customers already found:
// a batch of a hundred invocations usually covers a handful of spaces.
// Misses are not remembered, and nothing outlives the message, so a space
// provisioned a moment ago is found by the next request.
type customerLookups struct {
	store customers.Store
	mu    sync.Mutex
	found map[string]string // by space and providers
}

func (l *customerLookups) customer(ctx context.Context, space string, providers []string) (string, error) {
	key := space + " " + strings.Join(providers, " ")
	l.mu.Lock()
	c, ok := l.found[key]
	l.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := l.store.Customer(ctx, space, providers)
	if err == nil {
		l.mu.Lock()
		l.found[key] = c
		l.mu.Unlock()
	}
	return c, err
}

// fail issues a failure receipt for inv. Failure receipts are returned but not
// stored, so the same invocation can succeed once its cause is fixed (for
// example after the space is provisioned).
func (s *Server) fail(inv invocation.Invocation, can string, f capabilities.Failure) outcome {
	o := outcome{capability: can, result: f.FailureName}
	o.receipt, o.err = receipt.Issue(s.cfg.Signer, result.Error[capabilities.RecordOK, capabilities.Failure](f), ran.FromInvocation(inv))
	return o
}

// failLink issues a failure receipt naming the invocation only by its link,
// for invocations refused before their blocks were trusted to be read.
func (s *Server) failLink(link ipld.Link, can string, f capabilities.Failure) outcome {
	o := outcome{capability: can, result: f.FailureName}
	o.receipt, o.err = receipt.Issue(s.cfg.Signer, result.Error[capabilities.RecordOK, capabilities.Failure](f), ran.FromLink(link))
	return o
}
