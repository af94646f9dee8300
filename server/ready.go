package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Prober is what a store may implement to say whether it can take writes
// right now: an embedded store opens a write transaction on its file and
// writes a scratch file beside it (a full disk or a read-only mount fails
// it), an AWS store makes one cheap call. Stores that do not implement it
// are taken as ready.
type Prober interface {
	Ready(ctx context.Context) error
}

// NamedStore is a store as readiness reports it: the name tells the operator
// which one failed, without the store's error reaching the caller.
type NamedStore struct {
	Name  string
	Store any
}

// NotReadyError says which store failed its probe.
type NotReadyError struct {
	Store string
	Err   error
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("%s store is not ready: %v", e.Store, e.Err)
}
func (e *NotReadyError) Unwrap() error { return e.Err }

// probeTimeout bounds one probe: a store that takes longer is not ready for
// the requests a load balancer would send it.
const probeTimeout = 3 * time.Second

// CheckReady probes every store that is a Prober, in order, and returns the
// first failure as a *NotReadyError. A store listed twice (the embedded
// journal behind both queue and receipts) is probed each time: probes are
// cheap and the answer is cached by the caller.
func CheckReady(ctx context.Context, stores ...NamedStore) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for _, s := range stores {
		p, ok := s.Store.(Prober)
		if !ok {
			continue
		}
		if err := p.Ready(ctx); err != nil {
			return &NotReadyError{Store: s.Name, Err: err}
		}
	}
	return nil
}

// readyCacheFor is how long a probe's answer is reused: /readyz is on the
// public listener, and a flood of it must not turn into a flood of writes
// or AWS calls.
const readyCacheFor = 2 * time.Second

// CachedProbe returns probe wrapped so that it runs at most once per
// readyCacheFor, one at a time, and logs each failure once (not once per
// request that asked).
func CachedProbe(probe func(context.Context) error, log *slog.Logger) func(context.Context) error {
	r := &readiness{probe: probe, now: time.Now, log: log}
	return r.check
}

// readiness runs a probe at most once per readyCacheFor, one at a time.
type readiness struct {
	probe func(context.Context) error
	now   func() time.Time
	log   *slog.Logger

	mu  sync.Mutex
	at  time.Time
	err error
}

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); r.at.IsZero() || now.Sub(r.at) >= readyCacheFor {
		// The probe outlives the request that asked: its answer is shared.
		r.err = r.probe(context.WithoutCancel(ctx))
		r.at = r.now()
		if r.err != nil {
			r.log.Error("readiness probe failed", "err", r.err)
		}
	}
	return r.err
}

// Ready probes the server's stores (journal, queue, receipts, customers,
// revocations): nil when each can be reached and written.
func (s *Server) Ready(ctx context.Context) error {
	return s.ready(ctx)
}

func (s *Server) probeStores(ctx context.Context) error {
	return CheckReady(ctx,
		NamedStore{"journal", s.cfg.Journal},
		NamedStore{"queue", s.cfg.Queue},
		NamedStore{"receipts", s.cfg.Receipts},
		NamedStore{"customers", s.cfg.Customers},
		NamedStore{"revocations", s.cfg.Revocations},
	)
}

// HealthHandler answers liveness: the process is up and serving HTTP. It
// says nothing of the stores, so that a full disk takes a replica out of
// the load balancer (readiness) without getting it restarted.
func HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// ReadyHandler answers readiness with ready: 200 "ok" when it returns nil,
// else 503 with a JSON error naming the store (its error goes to the log,
// through CachedProbe, never to the caller, who may be anyone).
func ReadyHandler(ready func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := ready(r.Context())
		if err == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
			return
		}
		msg := "a store cannot be reached or written; see the service log"
		var nr *NotReadyError
		if errors.As(err, &nr) {
			msg = fmt.Sprintf("the %s store cannot be reached or written; see the service log", nr.Store)
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "NotReady", msg)
	})
}
