package billing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// BenchmarkWorker measures the events per second one worker settles
// against the fake Stripe with the rate limit out of the way, and the
// Stripe calls it makes per event. One op is one event; run it with a
// fixed count, for example:
//
//	go test -run '^$' -bench Worker -benchtime 3000x ./billing/
func BenchmarkWorker(b *testing.B) {
	for _, api := range []string{"v1", "v2"} {
		for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
			for _, concurrency := range []int{8, 32} {
				b.Run(fmt.Sprintf("api=%s/stripe=%v/concurrency=%d", api, latency, concurrency), func(b *testing.B) {
					benchmarkWorker(b, api, latency, concurrency)
				})
			}
		}
	}
}

func benchmarkWorker(b *testing.B, api string, latency time.Duration, concurrency int) {
	h := newHarness(b, time.Minute)
	h.fake.SetDelay(latency)
	accounts := map[string]string{}
	const customers = 64
	for i := range customers {
		c := h.customer(b, fmt.Sprint("c", i), fmt.Sprint("stripe:cus_", i))
		accounts[c] = fmt.Sprint("stripe:cus_", i)
	}
	// Events of all customers interleaved, as a busy gateway sends them.
	for i := range b.N {
		h.enqueue(b, fmt.Sprint("did:mailto:example.com:c", i%customers), 1)
	}
	cfg := h.config(h.sinkAPI(b, api, 1e6))
	cfg.Concurrency = concurrency
	cfg.Batch = 10
	cfg.Visibility = time.Minute // the default: extensions are rare
	w := newWorker(b, cfg)

	b.ResetTimer()
	start := time.Now()
	runUntil(b, w, h.settled(b))
	elapsed := time.Since(start)
	b.StopTimer()

	h.checkExactlyOnce(b, accounts)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	requests := h.fake.Requests(stripetest.MeterEventsEndpoint) + h.fake.Requests(stripetest.StreamEndpoint)
	b.ReportMetric(float64(requests)/float64(b.N), "requests/event")
}
