package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/egressd/egressd/billing"
	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/embedded"
)

// WorkerConfig describes a run of the billing worker against a local fake
// Stripe with the rate limit out of the way.
type WorkerConfig struct {
	// DataDir is an empty directory for the embedded queue and ledger.
	DataDir string
	// N events, spread over Customers customers.
	N, Customers int
	// Concurrency is the worker's customer concurrency.
	Concurrency int
	// StripeLatency delays every fake Stripe answer.
	StripeLatency time.Duration
}

// WorkerResult is what a worker run measured.
type WorkerResult struct {
	Events  int
	Elapsed time.Duration
	// Calls is the meter-event calls the fake Stripe received.
	Calls int
	// Reported is the distinct events Stripe holds, and Value their total;
	// exactly once means Reported == Events and Value == the bytes queued.
	Reported    int
	Value, Want int64
}

func (r WorkerResult) String() string {
	return fmt.Sprintf("%d events settled in %.2fs: %.0f events/s, %.2f Stripe calls per event, %d distinct meter events, value %d of %d bytes",
		r.Events, r.Elapsed.Seconds(), float64(r.Events)/r.Elapsed.Seconds(), float64(r.Calls)/float64(r.Events), r.Reported, r.Value, r.Want)
}

// ExactlyOnce reports whether every event reached Stripe once with its bytes.
func (r WorkerResult) ExactlyOnce() bool { return r.Reported == r.Events && r.Value == r.Want }

// RunWorker queues cfg.N events, runs the billing worker until all are
// reported, and checks what the fake Stripe holds.
func RunWorker(ctx context.Context, cfg WorkerConfig) (WorkerResult, error) {
	var res WorkerResult
	fake := stripetest.Start()
	defer fake.Close()
	fake.SetDelay(cfg.StripeLatency)

	journal, err := embedded.Open(ctx, cfg.DataDir, billingsqlite.QueueOptions{Poll: 10 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer journal.Close()
	queue := journal.Queue
	ledger, err := billingsqlite.OpenLedger(cfg.DataDir)
	if err != nil {
		return res, err
	}
	defer ledger.Close()
	accounts, err := customersqlite.Open(cfg.DataDir)
	if err != nil {
		return res, err
	}
	defer accounts.Close()

	customers := make([]string, max(1, cfg.Customers))
	for i := range customers {
		customers[i] = fmt.Sprintf("did:mailto:bench.example:c%d", i)
		if err := accounts.SetAccount(ctx, customers[i], fmt.Sprintf("stripe:cus_bench%d", i)); err != nil {
			return res, err
		}
	}
	events := make([]billing.Event, cfg.N)
	servedAt := time.Now().Add(-time.Minute)
	for i := range events {
		cause := make([]byte, 16)
		rand.Read(cause)
		events[i] = billing.Event{
			Space: "did:key:z6Mkbench", Customer: customers[i%len(customers)],
			Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
			Bytes:    int64(1000 + i), ServedAt: servedAt, Cause: "bafybench" + hex.EncodeToString(cause),
		}
		res.Want += events[i].Bytes
	}
	for start := 0; start < len(events); start += 500 {
		if err := queue.Enqueue(ctx, events[start:min(start+500, len(events))]...); err != nil {
			return res, err
		}
	}

	reporter, err := stripe.New(stripe.Config{Key: stripetest.Key, URL: fake.URL, Rate: 1e6, Logger: quiet()})
	if err != nil {
		return res, err
	}
	worker, err := billing.NewWorker(billing.WorkerConfig{
		Queue: queue, Ledger: ledger, Accounts: accounts, Reporter: reporter,
		Concurrency: cfg.Concurrency, Wait: 50 * time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- worker.Run(runCtx) }()
	// Watch the queue, which shrinks, rather than the ledger, which grows: a
	// count over the whole ledger every few milliseconds would cost the
	// worker more than it measures. Once the queue is empty, the ledger
	// confirms every event was reported.
	for {
		depth, err := queue.Depth(ctx)
		if err != nil {
			stop()
			return res, err
		}
		if depth == 0 {
			counts, err := ledger.Count(ctx, billing.UsageFilter{Month: billing.Month(servedAt)})
			if err != nil {
				stop()
				return res, err
			}
			if counts[billing.Reported] >= int64(cfg.N) {
				break
			}
		}
		select {
		case <-ctx.Done():
			stop()
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.Elapsed = time.Since(start)
	stop()
	if err := <-done; err != nil {
		return res, err
	}
	res.Events = cfg.N
	res.Calls = fake.Calls()
	for _, ev := range fake.Events() {
		res.Reported++
		res.Value += ev.Value
	}
	return res, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
