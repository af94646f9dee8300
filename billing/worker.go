package billing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for WorkerConfig.
const (
	DefaultConcurrency  = 8
	DefaultBatch        = 10 // the most SQS hands out per receive
	DefaultWait         = time.Second
	DefaultLease        = 60 * time.Second
	DefaultMaxTries     = 8
	DefaultBackoffBase  = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultAccountTTL   = 30 * time.Second
	DefaultDrainTimeout = 10 * time.Second
)

// WorkerConfig is what a Worker needs. Queue, Ledger and Accounts are
// required; the rest have defaults.
type WorkerConfig struct {
	Queue    Queue
	Ledger   Ledger
	Accounts Accounts
	// CustomerLock, when set, keeps workers on other machines from calling
	// Stripe for a customer at the same time as this one (within one
	// worker, customers are always handled one call at a time). Nil when
	// one worker process bills alone, as on the embedded backend.
	CustomerLock CustomerLock
	// Reporter sends events to Stripe. Nil means no Stripe key is
	// configured: events are ledgered and counted, and marked unbillable
	// with ReasonNoKey until a redrive with a key.
	Reporter Reporter

	// Concurrency is how many customers are reported at once; each
	// customer's events always go one at a time.
	Concurrency int
	// Batch is the most messages taken per receive.
	Batch int
	// MaxLeased bounds the messages held at once (default 4 × Concurrency ×
	// Batch), so a slow customer cannot make the worker hoard the queue.
	MaxLeased int
	// Wait is how long one receive waits for messages.
	Wait time.Duration
	// Lease is how far each visibility extension pushes a held message; it
	// is extended every Lease/3, so it must not exceed the queue's own
	// visibility timeout by much.
	Lease time.Duration
	// MaxTries bounds the Stripe calls for one event before it is marked
	// failed (the dead-letter state).
	MaxTries int
	// BackoffBase and BackoffMax shape the jittered exponential backoff
	// between tries.
	BackoffBase, BackoffMax time.Duration
	// AccountTTL is how long a customer's account is cached.
	AccountTTL time.Duration
	// DrainTimeout is how long Run lets events in progress finish after its
	// context ends; events still unfinished then go back on the queue.
	DrainTimeout time.Duration

	Logger *slog.Logger
	// Registry receives the worker's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// CustomerLock is a lock per customer shared by every worker.
type CustomerLock interface {
	// Lock waits until the caller holds customer's lock, or ctx ends. The
	// returned context ends when the lock is lost: the Stripe calls for the
	// customer run under it, so they stop rather than overlap another's.
	Lock(ctx context.Context, customer string) (held context.Context, unlock func(), err error)
}

// Worker takes events off the queue and settles each in the ledger and with
// Stripe exactly once.
type Worker struct {
	cfg      WorkerConfig
	log      *slog.Logger
	metrics  *workerMetrics
	accounts *accountCache
	locks    customerLocks
	// active bounds the customers being worked on at once.
	active chan struct{}

	mu     sync.Mutex
	leased map[string]Message // by Message.ID, for lease extension
	// extending is held while leases are being extended.
	extending sync.Mutex
}

// NewWorker checks cfg and fills in defaults.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Queue == nil || cfg.Ledger == nil || cfg.Accounts == nil {
		return nil, errors.New("billing: worker needs a queue, a ledger and an account store")
	}
	setDefault(&cfg.Concurrency, DefaultConcurrency)
	setDefault(&cfg.Batch, DefaultBatch)
	setDefault(&cfg.MaxLeased, 4*cfg.Concurrency*cfg.Batch)
	setDefault(&cfg.Wait, DefaultWait)
	setDefault(&cfg.Lease, DefaultLease)
	setDefault(&cfg.MaxTries, DefaultMaxTries)
	setDefault(&cfg.BackoffBase, DefaultBackoffBase)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)
	setDefault(&cfg.AccountTTL, DefaultAccountTTL)
	setDefault(&cfg.DrainTimeout, DefaultDrainTimeout)
	if cfg.MaxLeased < cfg.Batch {
		cfg.MaxLeased = cfg.Batch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	metrics, err := newWorkerMetrics(cfg.Registry, cfg.Queue)
	if err != nil {
		return nil, err
	}
	return &Worker{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  metrics,
		accounts: newAccountCache(cfg.Accounts, cfg.AccountTTL, cfg.Now),
		locks:    customerLocks{m: make(map[string]*customerLock)},
		active:   make(chan struct{}, cfg.Concurrency),
		leased:   make(map[string]Message),
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Run receives and settles events until ctx ends, then lets the events in
// progress finish for up to DrainTimeout and returns. It returns an error
// only for a broken configuration; store failures are logged and retried.
func (w *Worker) Run(ctx context.Context) error {
	// Work in progress gets its own context so that shutting down stops
	// receiving at once but lets started events settle.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	go w.extendLeases(work)
	acks := w.startAcker()

	slots := make(chan struct{}, w.cfg.MaxLeased)
	var wg sync.WaitGroup
	receiveFailures := 0
	for {
		n, err := takeSlots(ctx, slots, w.cfg.Batch)
		if err != nil {
			break
		}
		msgs, err := w.cfg.Queue.Receive(ctx, n, w.cfg.Wait)
		giveSlots(slots, n-len(msgs))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			receiveFailures++
			w.metrics.errors.WithLabelValues("receive").Inc()
			w.log.Error("receiving from the queue", "err", err)
			if sleep(ctx, w.backoff(receiveFailures, 0)) != nil {
				break
			}
			continue
		}
		receiveFailures = 0
		for _, group := range groupByCustomer(msgs) {
			w.track(group...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.settleMessages(ctx, work, group, slots, acks)
			}()
		}
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.DrainTimeout):
		w.log.Warn("billing worker: events still in progress at shutdown go back on the queue")
		stopWork()
		<-done
	}
	acks.stop()
	return nil
}

// settleMessages settles one customer's messages in order, holding the
// customer's lock, and acknowledges each one that is settled. Once stop
// ends, messages not yet started go back to the queue; the one in progress
// finishes unless ctx ends too.
func (w *Worker) settleMessages(stop, ctx context.Context, msgs []Message, slots chan struct{}, acks *acker) {
	defer giveSlots(slots, len(msgs))
	err := w.serially(ctx, msgs[0].Event.Customer, func(ctx context.Context) {
		for _, msg := range msgs {
			if stop.Err() != nil {
				w.giveBack(msg)
				continue
			}
			switch w.handle(ctx, msg) {
			case ack:
				w.untrack(msg)
				acks.ack(msg)
			case retryLater:
				// Left leased: it reappears when the lease runs out, which
				// spaces out retries of a failing store.
				w.untrack(msg)
			case abandon:
				w.giveBack(msg)
			}
		}
	})
	if err != nil {
		for _, msg := range msgs {
			w.giveBack(msg)
		}
	}
}

// outcome is what to do with a message after handling it.
type outcome int

const (
	ack        outcome = iota // settled (or a settled duplicate): delete it
	retryLater                // a store failed: let the queue redeliver it
	abandon                   // shutting down: put it back for another worker now
)

// handle settles one message: ledger first (the dedup and the count), then
// Stripe, then the ledger state.
func (w *Worker) handle(ctx context.Context, msg Message) outcome {
	ev := msg.Event
	if err := ev.Validate(); err != nil {
		// Poison: the queue dead-letters it after its receive limit.
		w.metrics.events.WithLabelValues("invalid").Inc()
		w.log.Error("invalid event on the queue", "message", msg.ID, "receives", msg.Receives, "err", err)
		return retryLater
	}
	entry, isNew, err := w.cfg.Ledger.Record(ctx, ev)
	if err != nil {
		return w.storeFailed(ctx, "ledger_record", ev, err)
	}
	if entry.State != Pending {
		if isNew {
			// Settled by the ledger as it was recorded: its month's total
			// could not take its bytes. Never billed; visible to operators.
			w.metrics.events.WithLabelValues(string(entry.State)).Inc()
			w.log.Warn("event not billed", "cause", ev.Cause, "customer", ev.Customer, "state", entry.State, "reason", entry.Reason)
			return ack
		}
		w.metrics.events.WithLabelValues("duplicate").Inc()
		w.log.Debug("duplicate event, already settled", "cause", ev.Cause, "state", entry.State)
		return ack
	}
	// New, or pending because an earlier delivery stopped before settling
	// it: report again; Stripe dedupes on the identifier.
	state, reason, err := w.settle(ctx, entry.Event)
	if err != nil {
		return w.storeFailed(ctx, "accounts", ev, err)
	}
	if err := w.cfg.Ledger.Mark(ctx, entry.Event, state, reason); err != nil {
		return w.storeFailed(ctx, "ledger_mark", ev, err)
	}
	w.metrics.events.WithLabelValues(string(state)).Inc()
	w.metrics.lag.Observe(w.cfg.Now().Sub(ev.ServedAt).Seconds())
	if state != Reported {
		w.log.Warn("event not billed", "cause", ev.Cause, "customer", ev.Customer, "state", state, "reason", reason)
	}
	return ack
}

func (w *Worker) storeFailed(ctx context.Context, op string, ev Event, err error) outcome {
	if ctx.Err() != nil {
		return abandon
	}
	w.metrics.errors.WithLabelValues(op).Inc()
	w.log.Error("billing store failed; the event stays on the queue", "op", op, "cause", ev.Cause, "err", err)
	return retryLater
}

// groupByCustomer splits msgs by customer, keeping their order.
func groupByCustomer(msgs []Message) [][]Message {
	index := make(map[string]int)
	var groups [][]Message
	for _, m := range msgs {
		i, ok := index[m.Event.Customer]
		if !ok {
			i = len(groups)
			index[m.Event.Customer] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], m)
	}
	return groups
}

// takeSlots waits for one free slot, then takes up to max-1 more that are free.
func takeSlots(ctx context.Context, slots chan struct{}, max int) (int, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := 1
	for n < max {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func giveSlots(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}
