package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
)

// metrics are the server's Prometheus series.
type metrics struct {
	invocations    *prometheus.CounterVec
	requestSeconds prometheus.Histogram
	overloaded     prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, queue billing.Queue) (*metrics, error) {
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
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "egressd_requests_overloaded_total",
			Help: "Requests answered 503 because the in-flight memory budget stayed full (serve --max-inflight-bytes).",
		}),
	}
	queueDepth := billing.NewQueueDepthGauge(queue)
	for _, c := range []prometheus.Collector{m.invocations, m.requestSeconds, m.overloaded, queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering server metrics (one server per registry): %w", err)
		}
	}
	return m, nil
}
