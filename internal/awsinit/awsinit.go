// Package awsinit creates the AWS resources egressd's production backends
// need (`egressd aws init`): the receipts bucket, the event queue with its
// dead-letter queue, and the DynamoDB tables. Every step is idempotent: what
// already exists is kept (and checked, for tables), so it is safe to run on
// every deployment and against a half-initialised account. The one change
// made to an existing table is adding egressd's own index, unsettled, to an
// events table that lacks it (Storacha's, say): it is sparse, so no existing
// row enters it and none is changed.
//
// Table layouts (all PAY_PER_REQUEST, every attribute named here a string
// unless marked N). The consumer, customer and revocation tables are
// Storacha's w3infra tables; the two egress tables are laid out as w3infra's
// egress-traffic-events and egress-traffic-monthly so existing reports keep
// working:
//
//	consumer                key subscription (HASH), provider (RANGE)
//	                        attributes consumer (space DID), customer, cause, insertedAt, updatedAt
//	  GSI consumerV2        consumer (HASH); projects customer (and the keys subscription, provider)
//	customer                key customer (HASH)
//	                        attributes account ("stripe:cus_..."; absent for free tier), product, insertedAt, updatedAt
//	  GSI account           account (HASH); keys only
//	egress-traffic-events   key pk = "<space>#<resource>" (HASH), sk = "<servedAt ISO 8601>#<cause>" (RANGE)
//	                        attributes space, customer, resource, servedAt, bytes (N), cause
//	  GSI customer          customer (HASH), sk (RANGE); projects space, resource, bytes, cause, servedAt
//	  GSI space             space (HASH), servedAt (RANGE); projects resource, bytes
//	                        egressd adds the ledger's attributes: state, reason,
//	                        recordedAt, updatedAt, and unsettled while not reported
//	  GSI unsettled         unsettled = "<state>#<shard>" (HASH), cause (RANGE); projects all;
//	                        egressd's own, sparse: the entries Stripe has not accepted yet
//	egress-traffic-monthly  key pk = "customer#<customer DID>" (HASH), sk = "<YYYY-MM>#<space>" (RANGE)
//	                        attributes space, month (YYYY-MM), bytes (N), eventCount (N)
//	  GSI space-month-index space (HASH), month (RANGE); projects bytes, eventCount
//	revocation              key revoke = CID of a revoked delegation (HASH)
//	                        one attribute per revoker, named by its DID: a map {cause}
//	                        (named after the consumer table, see RevocationTable)
//
// A GSI always carries the table's and its own keys, so they are not listed
// again in its projection.
package awsinit

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/egressd/egressd/internal/awsconfig"
)

// Resources names what Init creates; nil fields are skipped.
type Resources struct {
	Bucket *awsconfig.Bucket
	Queue  *awsconfig.Queue
	Tables *awsconfig.Tables
}

// Options tunes Init; zero values take the defaults.
type Options struct {
	// MaxReceives is the queue's redrive policy: a message delivered this
	// many times without being deleted moves to the dead-letter queue
	// (default 10).
	MaxReceives int
	// Log reports each resource as it is created or found (default: discard).
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxReceives <= 0 {
		o.MaxReceives = DefaultMaxReceives
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// DefaultMaxReceives is the default maxReceiveCount of the redrive policy.
const DefaultMaxReceives = 10

// Init creates every named resource that does not exist yet.
func Init(ctx context.Context, cfg aws.Config, r Resources, opts Options) error {
	opts = opts.withDefaults()
	var errs []error
	if r.Bucket != nil {
		if err := Bucket(ctx, awsconfig.NewS3(cfg, r.Bucket.PathStyle), r.Bucket.Name, opts); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Queue != nil {
		if _, err := Queue(ctx, awsconfig.NewSQS(cfg), *r.Queue, opts); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Tables != nil {
		if err := Tables(ctx, awsconfig.NewDynamoDB(cfg), *r.Tables, opts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
