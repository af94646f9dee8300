package billing

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for WorkerConfig.
const (
	DefaultConcurrency  = 8
	DefaultBatch        = 10 // the most SQS hands out per receive
	DefaultWait         = time.Second
	DefaultVisibility   = 60 * time.Second
	DefaultMaxTries     = 8
	DefaultBackoffBase  = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultAccountTTL   = 30 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultWindow       = time.Minute
	DefaultRound        = 1000
	DefaultMinLeased    = 1000
)

// WorkerConfig is what a Worker needs. Queue, Ledger and Accounts are
// required; the rest have defaults.
type WorkerConfig struct {
	Queue    Queue
	Ledger   Ledger
	Accounts Accounts
	// CustomerLock, when set, keeps workers on other machines from calling
	// the sink for an account at the same time as this one, for a sink that
	// allows one call per customer at a time (within one worker such calls
	// always go one at a time). It is keyed by the sink's account
	// ("stripe:cus_..."). Nil when one worker process bills alone, as on
	// the embedded backend.
	CustomerLock CustomerLock
	// Sink is where batches are billed. Nil means none is configured:
	// events are ledgered and counted, and marked unbillable with
	// ReasonNoSink until a redrive with one.
	Sink Sink

	// Window is the UTC window a customer's events are summed over into one
	// charge, for a sink that aggregates (see CheckWindow).
	Window time.Duration
	// MaxBatchEvents caps the events of one batch; zero leaves it to the
	// ledger's own limit.
	MaxBatchEvents int
	// Concurrency is how many customers (or, for a sink without a
	// per-customer rule, lanes of customers) are billed at once.
	Concurrency int
	// Batch is the most messages taken per receive.
	Batch int
	// Round is the most messages one lane settles together: one ledger
	// transaction, its charges, one settling transaction.
	Round int
	// MaxLeased bounds the messages held at once (default the larger of
	// 4 × Concurrency × Batch and DefaultMinLeased), so a slow customer
	// cannot make the worker hoard the queue, while a hot customer's events
	// pile up enough to fill a batch while its previous charge is in flight.
	MaxLeased int
	// Wait is how long one receive waits for messages.
	Wait time.Duration
	// Visibility is how long a held message stays invisible to other
	// workers (--queue-visibility): each extension pushes it this far,
	// every Visibility/3, so it must not exceed the queue's own visibility
	// timeout by much.
	Visibility time.Duration
	// MaxTries bounds the sink calls for one batch before it is marked
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
	// UnbilledLogEvery is how often the events not billed are summed up in
	// the log: one WARN line per customer, state and reason in each interval
	// (default DefaultUnbilledLogEvery).
	UnbilledLogEvery time.Duration

	Logger *slog.Logger
	// Registry receives the worker's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// CustomerLock is a lock per customer shared by every worker.
type CustomerLock interface {
	// Lock waits until the caller holds customer's lock, or ctx ends. The
	// returned context ends when the lock is lost: the sink calls for the
	// customer run under it, so they stop rather than overlap another's.
	Lock(ctx context.Context, customer string) (held context.Context, unlock func(), err error)
}

// Worker takes events off the queue, gathers them into batches, and settles
// each batch in the ledger and with the sink exactly once.
//
// Messages go into a mailbox per lane: per customer when the sink allows one
// call per customer at a time (Stripe v1), else per hash of the customer
// into Concurrency lanes. One goroutine per busy lane takes everything in
// its mailbox as a round (up to Round messages) and settles it, so while a
// hot customer's charge is in flight, its next events pile up and go out
// together as the next batch.
type Worker struct {
	cfg      WorkerConfig
	log      *slog.Logger
	metrics  *workerMetrics
	unbilled *unbilledLog
	accounts *accountCache
	locks    namedLocks
	limits   SinkLimits
	rule     BatchRule
	// active bounds the lanes being worked on at once.
	active chan struct{}

	mu        sync.Mutex
	leased    map[string]Message // by Message.ID, for lease extension
	mailboxes map[string]*mailbox
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
	setDefault(&cfg.Round, DefaultRound)
	setDefault(&cfg.Window, DefaultWindow)
	setDefault(&cfg.MaxLeased, max(4*cfg.Concurrency*cfg.Batch, DefaultMinLeased))
	setDefault(&cfg.Wait, DefaultWait)
	setDefault(&cfg.Visibility, DefaultVisibility)
	setDefault(&cfg.MaxTries, DefaultMaxTries)
	setDefault(&cfg.BackoffBase, DefaultBackoffBase)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)
	setDefault(&cfg.AccountTTL, DefaultAccountTTL)
	setDefault(&cfg.DrainTimeout, DefaultDrainTimeout)
	setDefault(&cfg.UnbilledLogEvery, DefaultUnbilledLogEvery)
	if cfg.MaxLeased < cfg.Batch {
		cfg.MaxLeased = cfg.Batch
	}
	if err := CheckWindow(cfg.Window); err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	limits := SinkLimits{MaxCharges: 1, Aggregate: true}
	if cfg.Sink != nil {
		limits = cfg.Sink.Limits()
		limits.MaxCharges = max(1, limits.MaxCharges)
		if limits.OneCallPerCustomer {
			// One call holds one account's lock.
			limits.MaxCharges = 1
		}
	}
	rule := BatchRule{MaxBytes: limits.MaxValue, MaxEvents: cfg.MaxBatchEvents}
	if limits.Aggregate {
		rule.Window = cfg.Window
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
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   metrics,
		unbilled:  newUnbilledLog(cfg.Logger, cfg.UnbilledLogEvery),
		accounts:  newAccountCache(cfg.Accounts, cfg.AccountTTL, cfg.Now),
		locks:     namedLocks{m: make(map[string]*namedLock)},
		limits:    limits,
		rule:      rule,
		active:    make(chan struct{}, cfg.Concurrency),
		leased:    make(map[string]Message),
		mailboxes: make(map[string]*mailbox),
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
		w.track(msgs...)
		for _, msg := range msgs {
			w.post(ctx, work, msg, slots, acks, &wg)
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
	w.unbilled.stop()
	return nil
}

// mailbox holds a lane's messages waiting for its goroutine.
type mailbox struct {
	msgs    []Message
	running bool // a goroutine is settling this lane
}

// lane is where a customer's events are settled: the customer itself when
// the sink takes one call per customer at a time, else one of Concurrency
// lanes (by hash, so one customer's events stay in order).
func (w *Worker) lane(customer string) string {
	if w.limits.OneCallPerCustomer {
		return customer
	}
	h := fnv.New32a()
	h.Write([]byte(customer))
	return "lane-" + strconv.Itoa(int(h.Sum32()%uint32(w.cfg.Concurrency)))
}

// post puts msg in its lane's mailbox and starts the lane's goroutine if it
// is not running.
func (w *Worker) post(stop, ctx context.Context, msg Message, slots chan struct{}, acks *acker, wg *sync.WaitGroup) {
	lane := w.lane(msg.Event.Customer)
	w.mu.Lock()
	mb, ok := w.mailboxes[lane]
	if !ok {
		mb = &mailbox{}
		w.mailboxes[lane] = mb
	}
	mb.msgs = append(mb.msgs, msg)
	start := !mb.running
	mb.running = true
	w.mu.Unlock()
	if start {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runLane(stop, ctx, lane, slots, acks)
		}()
	}
}

// take removes up to Round messages from lane's mailbox; when it is empty
// it marks the lane idle (under the same lock post uses) and returns none.
func (w *Worker) take(lane string, all bool) []Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	mb := w.mailboxes[lane]
	n := len(mb.msgs)
	if !all {
		n = min(n, w.cfg.Round)
	}
	if n == 0 {
		mb.running = false
		delete(w.mailboxes, lane)
		return nil
	}
	msgs := mb.msgs[:n:n]
	mb.msgs = mb.msgs[n:]
	return msgs
}

// runLane settles lane's mail round after round until the mailbox is empty.
// Once stop ends, messages not yet started go back to the queue; the round
// in progress finishes unless ctx ends too.
func (w *Worker) runLane(stop, ctx context.Context, lane string, slots chan struct{}, acks *acker) {
	err := w.serially(ctx, lane, func(ctx context.Context) {
		for {
			msgs := w.take(lane, false)
			if msgs == nil {
				return
			}
			if stop.Err() != nil {
				for _, msg := range msgs {
					w.giveBack(msg)
				}
			} else {
				w.settleRound(ctx, msgs, acks)
			}
			giveSlots(slots, len(msgs))
		}
	})
	if err != nil {
		// The lane could not be locked: everything waiting goes back.
		for {
			msgs := w.take(lane, true)
			if msgs == nil {
				return
			}
			for _, msg := range msgs {
				w.giveBack(msg)
			}
			giveSlots(slots, len(msgs))
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

// settleRound settles one lane's messages together: the ledger records the
// new events in batches (the dedup and the count), the batches go to the
// sink, the ledger takes the outcomes, and each message whose batch is
// settled is acknowledged.
func (w *Worker) settleRound(ctx context.Context, msgs []Message, acks *acker) {
	finish := func(msg Message, o outcome) {
		switch o {
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

	valid := msgs[:0:0]
	for _, msg := range msgs {
		if err := msg.Event.Validate(); err != nil {
			// Poison: the queue dead-letters it after its receive limit.
			w.metrics.events.WithLabelValues("invalid").Inc()
			w.log.Error("invalid event on the queue", "message", msg.ID, "receives", msg.Receives, "err", err)
			finish(msg, retryLater)
			continue
		}
		valid = append(valid, msg)
	}
	if len(valid) == 0 {
		return
	}
	evs := make([]Event, len(valid))
	for i, msg := range valid {
		evs[i] = msg.Event
	}
	entries, made, err := w.cfg.Ledger.Record(ctx, evs, w.rule)
	if err == nil && len(entries) != len(evs) {
		err = fmt.Errorf("the ledger returned %d entries for %d events", len(entries), len(evs))
	}
	if err != nil {
		o := w.storeFailed(ctx, "ledger_record", len(valid), err)
		for _, msg := range valid {
			finish(msg, o)
		}
		return
	}

	// Which batches to send: the ones just made, and pending ones an
	// earlier delivery wrote and did not settle (a crash, a lost lease).
	batches := make(map[string]Batch, len(made))
	var toSend []Batch
	for _, b := range made {
		batches[b.ID] = b
		toSend = append(toSend, b)
	}
	waiting := make(map[string][]Message) // batch ID -> its messages in this round
	var repair []Settlement
	for i, e := range entries {
		msg := valid[i]
		if e.State != Pending {
			w.settledAlready(msg, e)
			finish(msg, ack)
			continue
		}
		if _, ok := batches[e.Batch]; !ok {
			b, err := w.cfg.Ledger.Batch(ctx, e.Batch)
			if err != nil {
				finish(msg, w.storeFailed(ctx, "ledger_batch", 1, err))
				continue
			}
			batches[b.ID] = b
			if b.State == Pending {
				toSend = append(toSend, b)
			} else {
				// Settled, but this member was not brought along (a stop
				// half way through settling): settle it again.
				repair = append(repair, Settlement{Batch: b, State: b.State, Reason: b.Reason})
			}
		}
		waiting[e.Batch] = append(waiting[e.Batch], msg)
	}

	settlements := w.bill(ctx, toSend)
	var decided []Settlement
	for i, s := range settlements {
		if s.State == "" {
			// Nothing was decided (shutting down, the account lookup or
			// the account's lock failed): the batch stays pending.
			msgs := waiting[toSend[i].ID]
			o := w.storeFailed(ctx, "bill", len(msgs), s.err)
			for _, msg := range msgs {
				finish(msg, o)
			}
			continue
		}
		decided = append(decided, s.Settlement)
	}
	decided = append(decided, repair...)
	if len(decided) == 0 {
		return
	}
	if err := w.cfg.Ledger.Settle(ctx, decided...); err != nil {
		o := w.storeFailed(ctx, "ledger_settle", len(decided), err)
		for _, s := range decided {
			for _, msg := range waiting[s.Batch.ID] {
				finish(msg, o)
			}
		}
		return
	}
	now := w.cfg.Now()
	for _, s := range decided {
		if s.State != Reported {
			w.unbilled.note(s.Batch.Customer, s.State, s.Reason, s.Batch.Events, s.Batch.ID)
		}
		for _, msg := range waiting[s.Batch.ID] {
			w.metrics.events.WithLabelValues(string(s.State)).Inc()
			w.metrics.lag.Observe(now.Sub(msg.Event.ServedAt).Seconds())
			finish(msg, ack)
		}
	}
}

// settledAlready accounts for a message whose entry the ledger holds settled:
// a redelivered duplicate, or an event settled as it was recorded (its
// month's total could not take its bytes: never billed, visible to operators).
func (w *Worker) settledAlready(msg Message, e Entry) {
	if e.State == Failed && strings.HasPrefix(e.Reason, ReasonTotalOverflow) && e.RecordedAt.Equal(e.UpdatedAt) {
		w.metrics.events.WithLabelValues(string(e.State)).Inc()
		w.unbilled.note(e.Customer, e.State, e.Reason, 1, "")
		w.log.Debug("event not billed", "cause", e.Cause, "customer", e.Customer, "state", e.State, "reason", e.Reason)
		return
	}
	w.metrics.events.WithLabelValues("duplicate").Inc()
	w.log.Debug("duplicate event, already settled", "cause", msg.Event.Cause, "state", e.State)
}

func (w *Worker) storeFailed(ctx context.Context, op string, events int, err error) outcome {
	if ctx.Err() != nil {
		return abandon
	}
	w.metrics.errors.WithLabelValues(op).Inc()
	w.log.Error("billing store failed; the events stay on the queue", "op", op, "events", events, "err", err)
	return retryLater
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
