package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
)

// metrics are the server's Prometheus series.
type metrics struct {
	invocations    *prometheus.CounterVec
	requestSeconds prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, queue billing.Queue) *metrics {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_invocations_total",
			Help: "Invocations handled, by capability and outcome (ok, duplicate, or the failure name).",
		}, []string{"capability", "outcome"}),
		requestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "egressd_request_duration_seconds",
			Help:    "Time to answer a POST / agent message.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	queueDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
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
	reg.MustRegister(m.invocations, m.requestSeconds, queueDepth)
	return m
}
