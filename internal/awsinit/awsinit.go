// Package awsinit creates the AWS resources egressd's production backends
// need (`egressd aws init`): the receipts bucket, the event queue with its
// dead-letter queue, and the DynamoDB tables. Every step is idempotent, so
// it is safe to run on every deployment and against a half-initialised
// account.
//
// Tables are laid out as internal/dynamotables defines them: Storacha's
// (consumer, subscription, customer, revocation, egress-traffic-events,
// egress-traffic-monthly) exactly as storacha/w3infra's stack creates them,
// with every index, so Storacha's code can use a table egressd created, and
// egressd's own billing ledger. A table that does not exist is created from
// its definition, with point-in-time recovery. A table that exists is only
// checked, never changed: its key and the indexes egressd queries must be
// as defined, or Tables fails naming the table and the difference. With
// Options.Storacha (--storacha) the tables are Storacha's deployment: its
// tables must exist already, and only egressd's ledger may be created.
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
	// Storacha says the tables are Storacha's deployment (--storacha):
	// Storacha's tables are only checked, and one that does not exist is an
	// error rather than created.
	Storacha bool
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

// Report is what Init did.
type Report struct {
	// Tables says, table by table, whether it was created or checked; nil
	// when Resources named no tables.
	Tables []TableResult
}

// Init creates every named resource that does not exist yet, and checks
// the tables that do.
func Init(ctx context.Context, cfg aws.Config, r Resources, opts Options) (Report, error) {
	opts = opts.withDefaults()
	var (
		report Report
		errs   []error
	)
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
		results, err := InitTables(ctx, awsconfig.NewDynamoDB(cfg), *r.Tables, opts)
		report.Tables = results
		if err != nil {
			errs = append(errs, err)
		}
	}
	return report, errors.Join(errs...)
}
