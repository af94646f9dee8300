package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/egressd/egressd/billing"
)

// metrics are the server's Prometheus series.
type metrics struct {
	invocations *prometheus.CounterVec
	// requests counts every answer by route and status, so that 503s (a
	// store down, the memory budget full) show on a dashboard.
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	overloaded     prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, queue billing.Queue) (*metrics, error) {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_invocations_total",
			Help: "Invocations handled, by capability and outcome (ok, duplicate, or the failure name).",
		}, []string{"capability", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_requests_total",
			Help: "HTTP requests answered, by route (invoke, receipt, info, did, healthz, readyz, other) and status code.",
		}, []string{"route", "status"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "egressd_request_duration_seconds",
			Help:    "Time to answer a POST / agent message, by status code.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"status"}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "egressd_requests_overloaded_total",
			Help: "Requests answered 503 because the in-flight memory budget stayed full (serve --max-inflight-bytes).",
		}),
	}
	queueDepth := billing.NewQueueDepthGauge(queue)
	for _, c := range []prometheus.Collector{m.invocations, m.requests, m.requestSeconds, m.overloaded, queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering server metrics (one server per registry): %w", err)
		}
	}
	return m, nil
}
