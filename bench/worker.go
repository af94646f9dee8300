package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/billing/stripe/fakestripe"
	"github.com/egressd/egressd/customers"
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
	// API is the Stripe meter event API, "v1" or "v2".
	API string
	// Window is the worker's aggregation window on v1 (0: the default).
	Window time.Duration
}

// WorkerResult is what a worker run measured.
type WorkerResult struct {
	Events  int
	Elapsed time.Duration
	// Requests is the meter-event requests the fake Stripe received (v1
	// meter events, or v2 stream requests), RateLimited the ones it
	// answered with a 429.
	Requests, RateLimited int
	// MeterEvents is the distinct meter events Stripe holds, and Value
	// their total; Reported is the events the ledger holds as reported.
	// Exactly once means Reported == Events and Value == the bytes queued.
	MeterEvents, Reported int
	Value, Want           int64
	// CPU is the process's user+system CPU time over the run (worker,
	// embedded stores and the fake Stripe together), PeakRSS its peak
	// resident memory.
	CPU     time.Duration
	PeakRSS int64
}

func (r WorkerResult) String() string {
	return fmt.Sprintf("%d events settled in %.2fs: %.0f events/s, %d Stripe requests (%.3f per event, %d answered 429), %d meter events, value %d of %d bytes, CPU %.1f µs/event, peak RSS %d MB",
		r.Events, r.Elapsed.Seconds(), float64(r.Events)/r.Elapsed.Seconds(), r.Requests, float64(r.Requests)/float64(r.Events), r.RateLimited,
		r.MeterEvents, r.Value, r.Want, float64(r.CPU.Microseconds())/float64(r.Events), r.PeakRSS>>20)
}

// ExactlyOnce reports whether every event reached Stripe once with its bytes.
func (r WorkerResult) ExactlyOnce() bool { return r.Reported == r.Events && r.Value == r.Want }

// RunWorker queues cfg.N events, runs the billing worker until all are
// reported, and checks what the fake Stripe holds.
func RunWorker(ctx context.Context, cfg WorkerConfig) (WorkerResult, error) {
	var res WorkerResult
	fake, err := fakestripe.Start()
	if err != nil {
		return res, err
	}
	defer fake.Close()
	fake.SetDelay(cfg.StripeLatency)

	db, err := embedded.Open(ctx, cfg.DataDir, embedded.Options{Poll: 10 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer db.Close()
	queue, ledger, accounts := db.Queue, db.Ledger, db.Customers

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

	sink, err := stripe.New(stripe.Config{Key: fakestripe.Key, URL: fake.URL, API: cfg.API, Rate: 1e6, Logger: quiet()})
	if err != nil {
		return res, err
	}
	worker, err := billing.NewWorker(billing.WorkerConfig{
		Queue: queue, Ledger: ledger, Accounts: accountsOf{accounts}, Sink: sink, Window: cfg.Window,
		Concurrency: cfg.Concurrency, Batch: 100, Wait: 50 * time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	cpu0 := cpuTime()
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
	res.CPU = cpuTime() - cpu0
	res.PeakRSS = peakRSS()
	stop()
	if err := <-done; err != nil {
		return res, err
	}
	res.Events = cfg.N
	res.Requests = fake.Requests(fakestripe.MeterEventsEndpoint) + fake.Requests(fakestripe.StreamEndpoint)
	res.RateLimited = len(fake.RateLimited())
	for _, ev := range fake.Events() {
		res.MeterEvents++
		res.Value += ev.Value
	}
	counts, err := ledger.Count(ctx, billing.UsageFilter{Month: billing.Month(servedAt)})
	if err != nil {
		return res, err
	}
	res.Reported = int(counts[billing.Reported])
	return res, nil
}

// accountsOf answers the worker's account lookups from the embedded
// customer store, in billing's terms.
type accountsOf struct{ store customers.Store }

func (a accountsOf) Account(ctx context.Context, customer string) (string, error) {
	account, err := a.store.Account(ctx, customer)
	if errors.Is(err, customers.ErrNotFound) {
		return "", billing.ErrUnknownCustomer
	}
	return account, err
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident memory in bytes (Linux reports
// ru_maxrss in KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
