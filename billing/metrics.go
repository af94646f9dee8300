package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// workerMetrics are the worker's Prometheus series.
type workerMetrics struct {
	events      *prometheus.CounterVec
	sinkCharges *prometheus.CounterVec
	errors      *prometheus.CounterVec
	lag         prometheus.Histogram
	leased      prometheus.Gauge
}

func newWorkerMetrics(reg *prometheus.Registry, queue Queue) (*workerMetrics, error) {
	m := &workerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_billing_events_total",
			Help: "Egress events settled by the worker, by resulting ledger state (reported, unbillable, failed), or duplicate (acknowledged without a second count or call), or invalid (left for the dead-letter queue).",
		}, []string{"state"}),
		sinkCharges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_billing_sink_charges_total",
			Help: "Charges (batches) sent to the billing sink, by sink and outcome: ok, retryable (429, 5xx, network), refused (4xx), canceled. A v2 stream request carries up to 100.",
		}, []string{"sink", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_billing_errors_total",
			Help: "Failures of the worker's own stores (the message is left on the queue to be redelivered), by operation.",
		}, []string{"op"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "egressd_billing_lag_seconds",
			Help:    "Time from servedAt to the event being settled in the ledger (queue lag, the aggregation window and the sink's time).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}),
		leased: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egressd_billing_leased_messages",
			Help: "Queue messages this worker holds leased (received, not yet acknowledged).",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.sinkCharges, m.errors, m.lag, m.leased} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering worker metrics (one worker per registry): %w", err)
		}
	}

	// The server registers the same series on a shared registry; a worker
	// sidecar has no server, so it brings its own.
	depth := NewQueueDepthGauge(queue)
	// An error here only means the series is already registered, by the
	// server sharing this registry: its copy is as good as ours.
	_ = reg.Register(depth)
	return m, nil
}

// NewQueueDepthGauge is the egressd_queue_depth series, read from the queue
// at each scrape. The server and the worker both export it.
func NewQueueDepthGauge(queue Queue) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "egressd_queue_depth",
		Help: "Egress events waiting on the queue or being billed.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := queue.Depth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
}
