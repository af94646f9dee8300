package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"

	billingdynamodb "github.com/egressd/egressd/billing/dynamodb"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
)

func awsCommand() *ffcli.Command {
	var (
		backend             backendFlags
		maxReceives         int
		logFormat, logLevel string
	)
	fs := flag.NewFlagSet("aws init", flag.ContinueOnError)
	// The same flags as the other commands, so the same EGRESSD_RECEIPTS,
	// EGRESSD_QUEUE and EGRESSD_TABLES set up what they then use.
	fs.StringVar(&backend.receipts, "receipts", "", "the receipts bucket to create: s3://BUCKET[/PREFIX][?path-style=true|false]")
	fs.StringVar(&backend.queue, "queue", "", "the event queue to create, with its dead-letter queue and redrive policy: sqs://QUEUE_NAME[?dlq=NAME]")
	fs.StringVar(&backend.tables, "tables", "", "the DynamoDB tables to create, or check if they exist (consumer, subscription, customer, revocation, egress-traffic-events, egress-traffic-monthly and egressd-ledger after the prefix): dynamodb://[TABLE_PREFIX][?consumer=&subscription=&customer=&revocation=&events=&monthly=&ledger=]")
	fs.BoolVar(&backend.storacha, "storacha", false, "the --tables are Storacha's deployment: check Storacha's tables (each must exist) and create only egressd's ledger table (env EGRESSD_STORACHA)")
	fs.IntVar(&maxReceives, "max-receives", awsinit.DefaultMaxReceives, "the queue's redrive policy: a message received this many times without being deleted moves to the dead-letter queue")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	initCmd := command("init",
		"egressd aws init [--receipts s3://BUCKET[/PREFIX]] [--queue sqs://QUEUE_NAME] [--tables dynamodb://[PREFIX]] [--storacha] [--max-receives 10]",
		"create the S3 bucket, SQS queues and DynamoDB tables the flags name, and check the tables that exist (never changing one); safe to run again", fs,
		func(ctx context.Context, args []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			if backend.receipts == "" && backend.queue == "" && backend.tables == "" {
				return errors.New("aws init: name what to create with --receipts, --queue and/or --tables")
			}
			if maxReceives < 1 {
				return fmt.Errorf("--max-receives %d: must be at least 1", maxReceives)
			}
			var res awsinit.Resources
			if backend.receipts != "" {
				b, err := awsconfig.ParseS3(backend.receipts)
				if err != nil {
					return fmt.Errorf("--receipts: %w", err)
				}
				res.Bucket = &b
			}
			if backend.queue != "" {
				q, err := awsconfig.ParseSQS(backend.queue)
				if err != nil {
					return fmt.Errorf("--queue: %w", err)
				}
				res.Queue = &q
			}
			if backend.tables != "" {
				t, err := awsconfig.ParseDynamoDB(backend.tables)
				if err != nil {
					return fmt.Errorf("--tables: %w", err)
				}
				res.Tables = &t
			}
			cfg, err := awsconfig.Load(ctx)
			if err != nil {
				return err
			}
			report, err := awsinit.Init(ctx, cfg, res, awsinit.Options{MaxReceives: maxReceives, Log: log, Storacha: backend.storacha})
			if err != nil {
				return err
			}
			if res.Bucket != nil {
				fmt.Printf("receipts: %s ready\n", res.Bucket)
			}
			if res.Queue != nil {
				fmt.Printf("queue: %s ready (dead-letter queue %s after %d receives)\n", res.Queue.Name, res.Queue.DeadLetter, maxReceives)
			}
			created := 0
			for _, t := range report.Tables {
				what := "checked"
				if t.Created {
					what = "created"
					created++
				}
				fmt.Printf("table %s (%s): %s\n", t.Name, t.Role, what)
			}
			if len(report.Tables) > 0 {
				fmt.Printf("tables: ready (%d created, %d checked)\n", created, len(report.Tables)-created)
			}
			if res.Tables != nil {
				// Ledger entries written before batches get a batch item
				// each, so reconciling the hours before the upgrade counts
				// them; a ledger already migrated (or new) is only scanned.
				client := awsconfig.NewDynamoDB(cfg)
				ledger := billingdynamodb.New(client, billingdynamodb.Tables{Events: res.Tables.Events, Monthly: res.Tables.Monthly, Ledger: res.Tables.Ledger})
				n, err := ledger.MigrateToBatches(ctx)
				if err != nil {
					return fmt.Errorf("bringing the ledger's entries into batches: %w", err)
				}
				fmt.Printf("ledger: %d entries from before batches given a batch\n", n)
			}
			return nil
		})
	root := command("aws", "egressd aws init [flags]", "set up the AWS backends", flag.NewFlagSet("aws", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{initCmd}
	return root
}
