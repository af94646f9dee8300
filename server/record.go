package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
)

// RecordService answers egress records (usage/record and
// space/content/serve/egress/record): it bounds the bytes and the time of
// the egress, finds the customer who pays for the space and makes the
// billing event. The server has validated the invocation before, and queues
// the event and stores the receipt after.
type RecordService struct {
	// MaxBytesPerEvent bounds nb.bytes (BytesOutOfRange past it).
	MaxBytesPerEvent int64
	// MaxAge and MaxAhead bound servedAt around Now (ServedAtOutOfRange).
	MaxAge, MaxAhead time.Duration
	Now              func() time.Time
	// Providers are the service's DIDs, its own first: a space's consumer
	// record may name any of them as its provider.
	Providers []string
}

// Handle checks the record, finds its customer and answers RecordOK with
// the billing event.
func (r *RecordService) Handle(ctx context.Context, req Request[capabilities.RecordCaveats]) (Result, error) {
	space := req.Capability.With()
	nb := req.Capability.Nb()

	if nb.Bytes > r.MaxBytesPerEvent {
		return Fail(capabilities.Failure{FailureName: "BytesOutOfRange",
			Message: fmt.Sprintf("bytes %d is more than the %d one event may record", nb.Bytes, r.MaxBytesPerEvent)}), nil
	}

	now := r.Now()
	servedAt := nb.ServedTime()
	if servedAt.After(now.Add(r.MaxAhead)) || servedAt.Before(now.Add(-r.MaxAge)) {
		return Fail(capabilities.ServedAtOutOfRange(servedAt, now, r.MaxAge, r.MaxAhead)), nil
	}

	// The audience comes first: a consumer record under the DID the gateway
	// addressed is the one meant.
	providers := append([]string{req.Audience}, r.Providers...)
	customer, err := req.Customers.Customer(ctx, space, providers)
	if errors.Is(err, customers.ErrNotFound) {
		return Fail(capabilities.ConsumerNotFound(space)), nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("looking up the customer of %s: %w", space, err)
	}

	return OK(capabilities.NewRecordOK(space, nb, req.Identity), billing.Event{
		Space:    space,
		Customer: customer,
		Resource: nb.Resource.String(),
		Bytes:    nb.Bytes,
		ServedAt: servedAt,
		Cause:    req.Identity.String(),
	}), nil
}

// recordCapability serves both names of the record capability with svc.
// TrustedIssuers apply to it: recording egress is what gateways do.
func recordCapability(svc *RecordService) *Definition[capabilities.RecordCaveats] {
	return &Definition[capabilities.RecordCaveats]{
		Parsers:     []validator.CapabilityParser[capabilities.RecordCaveats]{capabilities.Record, capabilities.EgressRecordCapability},
		ReadCaveats: capabilities.ReadCaveats,
		Handler:     svc,
		Recorded:    true,
		TrustedOnly: true,
	}
}
