package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/egressd/egressd/billing"
	billingdynamodb "github.com/egressd/egressd/billing/dynamodb"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	billingsqs "github.com/egressd/egressd/billing/sqs"
	"github.com/egressd/egressd/customers"
	customersdynamodb "github.com/egressd/egressd/customers/dynamodb"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/receipts"
	receiptss3 "github.com/egressd/egressd/receipts/s3"
	"github.com/egressd/egressd/revocations"
	revocationsdynamodb "github.com/egressd/egressd/revocations/dynamodb"
	revocationsqlite "github.com/egressd/egressd/revocations/sqlite"
	"github.com/egressd/egressd/server"
)

// backendFlags choose where egressd keeps its data: everything under
// --data-dir (the embedded backend), or, store by store, S3 (--receipts),
// SQS (--queue) and DynamoDB (--tables: customers, the ledger, the monthly
// totals and the revocations).
type backendFlags struct {
	dataDir                 string
	receipts, queue, tables string
	// storacha says the --tables are Storacha's own deployment: their
	// schemas are checked, never created or changed, and what egressd
	// writes to them is what Storacha's code writes (see the README).
	storacha bool
	// queueVisibility is the queue's lease on a received message; commands
	// that run a worker set it from --queue-visibility, zero is the default.
	queueVisibility time.Duration
	// customerTTL caches found customers in front of DynamoDB (serve sets
	// it from --customer-ttl); zero caches nothing.
	customerTTL time.Duration
	// log receives what the stores report (the SQS queue's undecodable
	// messages); nil discards it.
	log *slog.Logger
}

// registerDataDir registers --data-dir alone, for commands that only read
// the service key.
func (b *backendFlags) registerDataDir(fs *flag.FlagSet) {
	fs.StringVar(&b.dataDir, "data-dir", "./data", "directory of the embedded backend (SQLite files and the service key)")
}

// register registers --data-dir and the AWS backend flags. Every command
// that opens a store takes all of them, so one set of EGRESSD_RECEIPTS,
// EGRESSD_QUEUE and EGRESSD_TABLES variables configures them all.
func (b *backendFlags) register(fs *flag.FlagSet) {
	b.registerDataDir(fs)
	b.registerAWS(fs)
}

// registerAWS registers --receipts, --queue and --tables.
func (b *backendFlags) registerAWS(fs *flag.FlagSet) {
	fs.StringVar(&b.receipts, "receipts", "", "keep receipts in S3: s3://BUCKET[/PREFIX][?path-style=true|false]; default: in the data directory")
	fs.StringVar(&b.queue, "queue", "", "carry events on SQS: sqs://QUEUE_NAME[?dlq=NAME] (dead-letter queue QUEUE_NAME-dlq); default: in the data directory")
	fs.BoolVar(&b.storacha, "storacha", false, "the --tables are Storacha's deployment: check their schemas and never change them, write only rows Storacha's code writes, meter event gateway-egress-traffic, did:web provider (env EGRESSD_STORACHA)")
	fs.StringVar(&b.tables, "tables", "", "keep customers, the billing ledger, monthly totals and revocations in DynamoDB: dynamodb://[TABLE_PREFIX][?consumer=&subscription=&customer=&revocation=&events=&monthly=&ledger=] (dynamodb://<stage>-w3infra- with --storacha runs on Storacha's tables); default: in the data directory")
}

// usesAWS reports whether any store is on AWS.
func (b *backendFlags) usesAWS() bool { return b.receipts != "" || b.queue != "" || b.tables != "" }

// awsConfig loads the AWS configuration from the standard chain
// (AWS_REGION, credentials, AWS_ENDPOINT_URL[_S3|_SQS|_DYNAMODB]...) when a
// store is on AWS; the stores of one process share it.
func (b *backendFlags) awsConfig(ctx context.Context) (aws.Config, error) {
	if !b.usesAWS() {
		return aws.Config{}, nil
	}
	// A mistyped URL is named before anything else can go wrong.
	if err := b.checkURLs(); err != nil {
		return aws.Config{}, err
	}
	return awsconfig.Load(ctx)
}

// checkURLs parses the backend URLs that are set.
func (b *backendFlags) checkURLs() error {
	if b.receipts != "" {
		if _, err := awsconfig.ParseS3(b.receipts); err != nil {
			return fmt.Errorf("--receipts: %w", err)
		}
	}
	if b.queue != "" {
		if _, err := awsconfig.ParseSQS(b.queue); err != nil {
			return fmt.Errorf("--queue: %w", err)
		}
	}
	if b.tables != "" {
		if _, err := awsconfig.ParseDynamoDB(b.tables); err != nil {
			return fmt.Errorf("--tables: %w", err)
		}
	}
	return nil
}

// describe names where each store lives, for the start-up log.
func (b *backendFlags) describe() []any {
	or := func(url string) string {
		if url == "" {
			return "embedded"
		}
		return url
	}
	return []any{"data_dir", b.dataDir, "receipts", or(b.receipts), "queue", or(b.queue), "tables", or(b.tables)}
}

// backend is the set of stores one process uses.
type backend struct {
	Customers customers.Store
	Queue     billing.Queue
	Ledger    billing.Ledger
	Receipts  receipts.Store
	// Journal records events and receipts in one transaction when both are
	// embedded; nil otherwise.
	Journal server.Journal
	// CustomerLock keeps workers on several machines from calling Stripe
	// for one customer at once: set with --tables, nil when embedded.
	CustomerLock billing.CustomerLock
	// Revocations holds the delegations revoked with ucan/revoke: in the
	// data directory, or in DynamoDB with --tables.
	Revocations revocations.Store
	// journal is the embedded queue and receipt store, opened once for both.
	journal *embedded.Journal
	closers []func() error
}

// Close closes every store that was opened, the last opened first (so the
// SQS queue sends what it holds before anything else goes).
func (b *backend) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// customerStore opens only the customer store (provision, customer set).
func (f *backendFlags) customerStore(ctx context.Context) (customers.Store, func() error, error) {
	cfg, err := f.awsConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	return f.customerStoreWith(ctx, cfg)
}

func (f *backendFlags) customerStoreWith(ctx context.Context, cfg aws.Config) (customers.Store, func() error, error) {
	if f.tables == "" {
		s, err := customersqlite.Open(f.dataDir)
		if err != nil {
			return nil, nil, err
		}
		// No cache: provisioning from another process takes effect at once.
		return s, s.Close, nil
	}
	tables, client, err := f.dynamoDB(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := checkTables(ctx, client, tables.Consumer, tables.Subscription, tables.Customer); err != nil {
		return nil, nil, err
	}
	var s customers.Store = customersdynamodb.New(client, customersdynamodb.Tables{Consumer: tables.Consumer, Subscription: tables.Subscription, Customer: tables.Customer})
	if f.customerTTL > 0 {
		s = customers.NewCached(s, f.customerTTL, 0)
	}
	return s, func() error { return nil }, nil
}

func (f *backendFlags) dynamoDB(cfg aws.Config) (awsconfig.Tables, *awsdynamodb.Client, error) {
	tables, err := awsconfig.ParseDynamoDB(f.tables)
	if err != nil {
		return awsconfig.Tables{}, nil, fmt.Errorf("--tables: %w", err)
	}
	return tables, awsconfig.NewDynamoDB(cfg), nil
}

// open opens every store.
func (f *backendFlags) open(ctx context.Context) (_ *backend, err error) {
	b := &backend{}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	cfg, err := f.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	cs, closeCustomers, err := f.customerStoreWith(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b.Customers = cs
	b.closers = append(b.closers, closeCustomers)

	if b.Ledger, err = f.openLedger(ctx, cfg, b); err != nil {
		return nil, err
	}
	if b.Revocations, err = f.openRevocations(ctx, cfg, b); err != nil {
		return nil, err
	}
	if b.Receipts, err = f.openReceipts(ctx, cfg, b); err != nil {
		return nil, err
	}
	// The queue last: it is closed first, flushing its batches while the
	// other stores are still open.
	if b.Queue, err = f.openQueue(ctx, cfg, b); err != nil {
		return nil, err
	}
	if f.queue == "" && f.receipts == "" {
		b.Journal = b.journal
	}
	return b, nil
}

// openJournal opens the embedded queue and receipt store, once per backend:
// they share one file.
func (f *backendFlags) openJournal(ctx context.Context, b *backend) (*embedded.Journal, error) {
	if b.journal == nil {
		j, err := embedded.Open(ctx, f.dataDir, billingsqlite.QueueOptions{Visibility: f.queueVisibility})
		if err != nil {
			return nil, err
		}
		b.journal = j
		b.closers = append(b.closers, j.Close)
	}
	return b.journal, nil
}

func (f *backendFlags) openLedger(ctx context.Context, cfg aws.Config, b *backend) (billing.Ledger, error) {
	if f.tables == "" {
		l, err := billingsqlite.OpenLedger(f.dataDir)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, l.Close)
		return l, nil
	}
	tables, client, err := f.dynamoDB(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkTables(ctx, client, tables.Events, tables.Monthly, tables.Ledger); err != nil {
		return nil, err
	}
	ledgerTables := billingdynamodb.Tables{Events: tables.Events, Monthly: tables.Monthly, Ledger: tables.Ledger}
	// Workers on several machines share the tables: they take turns per
	// customer through a lock in the ledger table.
	b.CustomerLock = billingdynamodb.NewCustomerLock(client, ledgerTables)
	return billingdynamodb.New(client, ledgerTables), nil
}

// openRevocations opens the revocation store: dataDir/revocations.db behind
// a one-second cache (a batch of invocations under one delegation costs one
// lookup; a revocation through this process applies at once, one written by
// another process on the data directory within a second), or with --tables the
// revocation table named after the consumer table (awsinit.RevocationTable:
// <prefix>revocation, beside <prefix>consumer), behind a short cache.
func (f *backendFlags) openRevocations(ctx context.Context, cfg aws.Config, b *backend) (revocations.Store, error) {
	if f.tables == "" {
		s, err := revocationsqlite.Open(f.dataDir)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, s.Close)
		return revocations.NewCached(s, time.Second, 0), nil
	}
	tables, client, err := f.dynamoDB(cfg)
	if err != nil {
		return nil, err
	}
	table := awsinit.RevocationTable(tables)
	if err := checkTables(ctx, client, table); err != nil {
		return nil, err
	}
	return revocations.NewCached(revocationsdynamodb.New(client, table), revocationCacheTTL, 0), nil
}

// revocationCacheTTL is how long a replica on DynamoDB trusts what it found
// about a delegation. Every invocation carries its gateway's delegation, so
// without a cache each would cost a DynamoDB round trip. A revocation
// recorded by this replica applies at once; one recorded by another replica
// (or by Storacha's upload service in a shared table) within this time.
const revocationCacheTTL = 5 * time.Second

func (f *backendFlags) openReceipts(ctx context.Context, cfg aws.Config, b *backend) (receipts.Store, error) {
	if f.receipts == "" {
		j, err := f.openJournal(ctx, b)
		if err != nil {
			return nil, err
		}
		return j.Receipts, nil
	}
	bucket, err := awsconfig.ParseS3(f.receipts)
	if err != nil {
		return nil, fmt.Errorf("--receipts: %w", err)
	}
	client := awsconfig.NewS3(cfg, bucket.PathStyle)
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket.Name)}); err != nil {
		return nil, fmt.Errorf("--receipts: bucket %s: %w (create it with `egressd aws init --receipts %s`)", bucket.Name, err, f.receipts)
	}
	return receiptss3.New(client, bucket.Name, bucket.Prefix, receiptss3.Options{}), nil
}

func (f *backendFlags) openQueue(ctx context.Context, cfg aws.Config, b *backend) (billing.Queue, error) {
	if f.queue == "" {
		j, err := f.openJournal(ctx, b)
		if err != nil {
			return nil, err
		}
		return j.Queue, nil
	}
	names, err := awsconfig.ParseSQS(f.queue)
	if err != nil {
		return nil, fmt.Errorf("--queue: %w", err)
	}
	q, err := billingsqs.Open(ctx, awsconfig.NewSQS(cfg), names.Name, billingsqs.Options{Visibility: f.queueVisibility, Log: f.log})
	if err != nil {
		return nil, fmt.Errorf("--queue: %w", err)
	}
	b.closers = append(b.closers, q.Close)
	return q, nil
}

// checkTables fails early, naming the fix, when a table is missing: better
// at start-up than on the first invocation.
func checkTables(ctx context.Context, client *awsdynamodb.Client, names ...string) error {
	var missing []string
	for _, name := range names {
		_, err := client.DescribeTable(ctx, &awsdynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *dbtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
			missing = append(missing, name)
		case err != nil:
			return fmt.Errorf("--tables: table %s: %w", name, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--tables: no table %s (create the tables with `egressd aws init --tables ...`)", strings.Join(missing, ", "))
	}
	return nil
}
