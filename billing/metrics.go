package billing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
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
	// The same for the dead letters, where the queue keeps them.
	if dl := NewDeadLetterGauge(queue); dl != nil {
		_ = reg.Register(dl)
	}
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

// DefaultUnbilledLogEvery is how often the worker writes its summary of the
// events it did not bill, per customer, state and reason.
const DefaultUnbilledLogEvery = time.Minute

// unbilledLog sums up the batches the worker did not bill (unbillable,
// failed), so that a customer without an account costs the log one WARN
// line per interval, not one per event: the first batch of a customer,
// state and reason is written at once, the rest are counted and written as
// one line when the interval ends. The ledger keeps each event's reason;
// `billing list` shows them.
type unbilledLog struct {
	log   *slog.Logger
	every time.Duration

	mu sync.Mutex
	// quiet holds the keys written in the current interval: more of them
	// are counted in pending, not written.
	quiet   map[unbilledKey]bool
	pending map[unbilledKey]*unbilledCount
	timer   *time.Timer
}

type unbilledKey struct {
	customer string
	state    State
	reason   string
}

type unbilledCount struct {
	batches, events int
	// lastBatch names one batch, for `billing list` or the console.
	lastBatch string
}

func newUnbilledLog(log *slog.Logger, every time.Duration) *unbilledLog {
	return &unbilledLog{log: log, every: every, quiet: map[unbilledKey]bool{}, pending: map[unbilledKey]*unbilledCount{}}
}

// note records a batch of events not billed; batch is empty for an event
// settled outside a batch.
func (u *unbilledLog) note(customer string, state State, reason string, events int, batch string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := unbilledKey{customer, state, reason}
	if !u.quiet[k] {
		u.quiet[k] = true
		u.write(k, unbilledCount{batches: 1, events: events, lastBatch: batch}, 0)
		if u.timer == nil {
			u.timer = time.AfterFunc(u.every, u.flush)
		}
		return
	}
	c := u.pending[k]
	if c == nil {
		c = &unbilledCount{}
		u.pending[k] = c
	}
	c.batches++
	c.events += events
	c.lastBatch = batch
}

// flush writes what was counted in the interval that ends. A key written
// now stays quiet for one more interval; a key with nothing counted may be
// written at once again.
func (u *unbilledLog) flush() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.quiet = map[unbilledKey]bool{}
	for k, c := range u.pending {
		u.write(k, *c, u.every)
		u.quiet[k] = true
	}
	u.pending = map[unbilledKey]*unbilledCount{}
	u.timer = nil
	if len(u.quiet) > 0 {
		u.timer = time.AfterFunc(u.every, u.flush)
	}
}

// stop writes what is counted and stops the timer: the worker is stopping.
func (u *unbilledLog) stop() {
	u.mu.Lock()
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	pending := u.pending
	u.pending = map[unbilledKey]*unbilledCount{}
	u.mu.Unlock()
	for k, c := range pending {
		u.write(k, *c, 0)
	}
}

func (u *unbilledLog) write(k unbilledKey, c unbilledCount, over time.Duration) {
	args := []any{"customer", k.customer, "state", k.state, "reason", k.reason, "batches", c.batches, "events", c.events}
	if c.lastBatch != "" {
		args = append(args, "batch", c.lastBatch)
	}
	if over > 0 {
		args = append(args, "over", over)
	}
	u.log.Warn("events not billed", args...)
}
