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

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
)

// outcome is what running one invocation produced.
type outcome struct {
	receipt receipt.AnyReceipt
	// events are those of a new success: they must be queued before
	// receipt is returned.
	events []billing.Event
	// store is set when receipt must be stored with the events, for a
	// repeat of the invocation to get it back.
	store bool
	// capability and result label the invocation in metrics.
	capability, result string
	// err is an internal failure (a store is down): the whole message fails
	// with 503 so the gateway retries, instead of a receipt blaming the caller.
	err error
}

// run checks and executes one invocation: what every capability shares is
// done here, the rest by the capability it names. It never panics: a panic
// in a decoder, validator or handler on hostile input becomes a failure
// receipt.
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
	c, ok := s.capabilities[can]
	if !ok {
		if why, off := s.switchedOff[can]; off {
			return s.fail(inv, can, capabilities.Failure{FailureName: "HandlerNotFound", Message: why})
		}
		return s.fail(inv, o.capability, capabilities.Failure{FailureName: "HandlerNotFound",
			Message: fmt.Sprintf("this service does not provide %q; it provides %s", can, strings.Join(s.served(), ", "))})
	}
	o.capability = can
	rules := c.rules()

	var recordedAs ipld.Link
	if rules.recorded {
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
	}

	audience := s.didNames.name(inv.Audience().DID())
	if !slices.Contains(s.audiences, audience) {
		return s.fail(inv, can, capabilities.Failure{FailureName: "InvalidAudience",
			Message: fmt.Sprintf("invocation is addressed to %s, this service is %v", audience, s.audiences)})
	}
	if rules.trustedOnly && s.trusted != nil && !s.trusted[s.didNames.name(inv.Issuer().DID())] {
		return s.fail(inv, can, capabilities.Failure{FailureName: "UntrustedIssuer",
			Message: fmt.Sprintf("%s is not a trusted gateway of this service", inv.Issuer().DID())})
	}

	res, err := c.serve(ctx, s, can, inv, request{audience: audience, identity: item.identity, lookups: lookups, blocks: item.blocks})
	if err != nil {
		o.err = err
		return o
	}
	if res.Failure != nil {
		return s.fail(inv, can, *res.Failure)
	}
	o.receipt, err = receipt.Issue(s.cfg.Signer, result.Ok[ipld.Builder, capabilities.Failure](res.OK), ran.FromInvocation(inv))
	if err != nil {
		o.err = fmt.Errorf("signing receipt: %w", err)
		return o
	}
	if recordedAs != nil {
		o.result = "duplicate"
		return o
	}
	o.result, o.events, o.store = "ok", res.Events, rules.recorded
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

// Customer finds the customer of space, from the store the first time.
func (l *customerLookups) Customer(ctx context.Context, space string, providers []string) (string, error) {
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
	o.receipt, o.err = receipt.Issue(s.cfg.Signer, result.Error[ipld.Builder, capabilities.Failure](f), ran.FromInvocation(inv))
	return o
}

// failLink issues a failure receipt naming the invocation only by its link,
// for invocations refused before their blocks were trusted to be read.
func (s *Server) failLink(link ipld.Link, can string, f capabilities.Failure) outcome {
	o := outcome{capability: can, result: f.FailureName}
	o.receipt, o.err = receipt.Issue(s.cfg.Signer, result.Error[ipld.Builder, capabilities.Failure](f), ran.FromLink(link))
	return o
}
