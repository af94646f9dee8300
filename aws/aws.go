// Package aws is the production backend: receipts in S3 (s3://), the event
// queue on SQS (sqs://), and customers, the ledger, monthly totals and
// revocations in DynamoDB (dynamodb://), Storacha's own tables included. The
// stores themselves live beside their interfaces (receipts/s3, billing/sqs,
// customers/dynamodb, billing/dynamodb, revocations/dynamodb); this package
// opens them from a URL and checks, at start-up, that what they need exists.
package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/egressd/egressd/backend"
	"github.com/egressd/egressd/billing"
	billingdynamodb "github.com/egressd/egressd/billing/dynamodb"
	billingsqs "github.com/egressd/egressd/billing/sqs"
	"github.com/egressd/egressd/customers"
	customersdynamodb "github.com/egressd/egressd/customers/dynamodb"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/receipts"
	receiptss3 "github.com/egressd/egressd/receipts/s3"
	"github.com/egressd/egressd/revocations"
	revocationsdynamodb "github.com/egressd/egressd/revocations/dynamodb"
)

// Open opens the backend an s3://, sqs:// or dynamodb:// URL names. It only
// parses the URL; the AWS configuration (AWS_REGION, credentials,
// AWS_ENDPOINT_URL...) is loaded when the first store is opened.
func Open(ctx context.Context, url string, cfg backend.Config) (backend.Backend, error) {
	scheme, _, _ := strings.Cut(url, "://")
	switch scheme {
	case "s3":
		b, err := awsconfig.ParseS3(url)
		if err != nil {
			return nil, err
		}
		return &bucket{url: url, bucket: b}, nil
	case "sqs":
		q, err := awsconfig.ParseSQS(url)
		if err != nil {
			return nil, err
		}
		return &queue{url: url, queue: q, cfg: cfg}, nil
	case "dynamodb":
		t, err := awsconfig.ParseDynamoDB(url)
		if err != nil {
			return nil, err
		}
		return &tables{url: url, tables: t, cfg: cfg}, nil
	}
	return nil, fmt.Errorf("%s: not an s3://, sqs:// or dynamodb:// URL", url)
}

// keepsNothing answers ErrNotKept for every store; each backend below
// overrides the stores it keeps.
type keepsNothing struct{}

func (keepsNothing) Customers(context.Context) (customers.Store, error) {
	return nil, backend.ErrNotKept
}
func (keepsNothing) Ledger(context.Context) (billing.Ledger, error) { return nil, backend.ErrNotKept }
func (keepsNothing) Revocations(context.Context) (revocations.Store, error) {
	return nil, backend.ErrNotKept
}
func (keepsNothing) Receipts(context.Context) (receipts.Store, error) {
	return nil, backend.ErrNotKept
}
func (keepsNothing) Queue(context.Context) (billing.Queue, error) { return nil, backend.ErrNotKept }
func (keepsNothing) Close() error                                 { return nil }

// config loads the AWS configuration once per backend.
type config struct {
	once sync.Once
	cfg  sdkaws.Config
	err  error
}

func (c *config) load(ctx context.Context) (sdkaws.Config, error) {
	c.once.Do(func() { c.cfg, c.err = awsconfig.Load(ctx) })
	return c.cfg, c.err
}

// bucket keeps receipts in S3.
type bucket struct {
	keepsNothing
	url    string
	bucket awsconfig.Bucket
	aws    config
	store  backend.Once[receipts.Store]
}

// Receipts checks the bucket answers, so a missing bucket is named at
// start-up rather than on the first receipt.
func (b *bucket) Receipts(ctx context.Context) (receipts.Store, error) {
	return b.store.Get(func() (receipts.Store, error) {
		cfg, err := b.aws.load(ctx)
		if err != nil {
			return nil, err
		}
		client := awsconfig.NewS3(cfg, b.bucket.PathStyle)
		if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: sdkaws.String(b.bucket.Name)}); err != nil {
			return nil, fmt.Errorf("bucket %s: %w (create it with `egressd aws init --receipts %s`)", b.bucket.Name, err, b.url)
		}
		return receiptss3.New(client, b.bucket.Name, b.bucket.Prefix, receiptss3.Options{}), nil
	})
}

// queue carries events on SQS.
type queue struct {
	keepsNothing
	url   string
	queue awsconfig.Queue
	cfg   backend.Config
	aws   config
	store backend.Once[*billingsqs.Queue]
}

// Queue finds the queue (billingsqs.Open fails when it does not exist).
func (q *queue) Queue(ctx context.Context) (billing.Queue, error) {
	return q.store.Get(func() (*billingsqs.Queue, error) {
		cfg, err := q.aws.load(ctx)
		if err != nil {
			return nil, err
		}
		return billingsqs.Open(ctx, awsconfig.NewSQS(cfg), q.queue.Name, billingsqs.Options{Visibility: q.cfg.Visibility, Log: q.cfg.Log})
	})
}

// Close sends what the queue still holds.
func (q *queue) Close() error {
	if s, ok := q.store.Opened(); ok {
		return s.Close()
	}
	return nil
}

// revocationCacheTTL is how long a replica on DynamoDB trusts what it found
// about a delegation. Every invocation carries its gateway's delegation, so
// without a cache each would cost a DynamoDB round trip. A revocation
// recorded by this replica applies at once; one recorded by another replica
// (or by Storacha's upload service in a shared table) within this time.
const revocationCacheTTL = 5 * time.Second

// tables keeps customers, the ledger and revocations in DynamoDB.
type tables struct {
	keepsNothing
	url    string
	tables awsconfig.Tables
	cfg    backend.Config
	aws    config

	customers   backend.Once[customers.Store]
	ledger      backend.Once[billing.Ledger]
	lock        backend.Once[billing.CustomerLock]
	revocations backend.Once[revocations.Store]
}

// client loads the configuration and checks the named tables exist.
func (t *tables) client(ctx context.Context, names ...string) (*dynamodb.Client, error) {
	cfg, err := t.aws.load(ctx)
	if err != nil {
		return nil, err
	}
	client := awsconfig.NewDynamoDB(cfg)
	return client, checkTables(ctx, client, names...)
}

// Customers reads Storacha's consumer, subscription and customer tables,
// behind a cache when backend.Config.CustomerTTL is set.
func (t *tables) Customers(ctx context.Context) (customers.Store, error) {
	return t.customers.Get(func() (customers.Store, error) {
		client, err := t.client(ctx, t.tables.Consumer, t.tables.Subscription, t.tables.Customer)
		if err != nil {
			return nil, err
		}
		var s customers.Store = customersdynamodb.New(client, customersdynamodb.Tables{Consumer: t.tables.Consumer, Subscription: t.tables.Subscription, Customer: t.tables.Customer})
		if t.cfg.CustomerTTL > 0 {
			s = customers.NewCached(s, t.cfg.CustomerTTL, 0)
		}
		return s, nil
	})
}

func (t *tables) ledgerTables() billingdynamodb.Tables {
	return billingdynamodb.Tables{Events: t.tables.Events, Monthly: t.tables.Monthly, Ledger: t.tables.Ledger}
}

// Ledger writes Storacha's egress-traffic tables and egressd's ledger table.
func (t *tables) Ledger(ctx context.Context) (billing.Ledger, error) {
	return t.ledger.Get(func() (billing.Ledger, error) {
		client, err := t.client(ctx, t.tables.Events, t.tables.Monthly, t.tables.Ledger)
		if err != nil {
			return nil, err
		}
		return billingdynamodb.New(client, t.ledgerTables()), nil
	})
}

// CustomerLock lets workers on several machines share the ledger: they
// take turns per Stripe account through a lock item in the ledger table.
func (t *tables) CustomerLock(ctx context.Context) (billing.CustomerLock, error) {
	return t.lock.Get(func() (billing.CustomerLock, error) {
		client, err := t.client(ctx, t.tables.Ledger)
		if err != nil {
			return nil, err
		}
		return billingdynamodb.NewCustomerLock(client, t.ledgerTables()), nil
	})
}

// Revocations reads the revocation table beside the consumer table
// (awsinit.RevocationTable), behind a short cache.
func (t *tables) Revocations(ctx context.Context) (revocations.Store, error) {
	return t.revocations.Get(func() (revocations.Store, error) {
		table := awsinit.RevocationTable(t.tables)
		client, err := t.client(ctx, table)
		if err != nil {
			return nil, err
		}
		return revocations.NewCached(revocationsdynamodb.New(client, table), revocationCacheTTL, 0), nil
	})
}

// checkTables fails early, naming the fix, when a table is missing: better
// at start-up than on the first invocation.
func checkTables(ctx context.Context, client *dynamodb.Client, names ...string) error {
	var missing []string
	for _, name := range names {
		_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: sdkaws.String(name)})
		var notFound *dbtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			missing = append(missing, name)
		case err != nil:
			return fmt.Errorf("table %s: %w", name, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no table %s (create the tables with `egressd aws init --tables ...`)", strings.Join(missing, ", "))
	}
	return nil
}
