package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/storacha/go-ucanto/principal"

	"github.com/egressd/egressd/console"
)

// The operator console of `serve --admin-listen`: its listener, the token
// rule, and the figures only the process has (invocations per second, the
// last reconcile).

// checkAdminListen refuses a console reachable beyond this machine without
// a token: it shows every customer's money and can re-drive billing.
func checkAdminListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin-listen %q: want HOST:PORT, such as 127.0.0.1:9090", addr)
	}
	if token != "" {
		return nil
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--admin-listen %s listens beyond this machine: set --admin-token (or EGRESSD_ADMIN_TOKEN)", addr)
}

// serveConsole serves the console on addr until stop is called.
func serveConsole(addr string, cfg console.Config, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           console.New(cfg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go srv.Serve(ln)
	log.Info("operator console listening", "url", "http://"+ln.Addr().String()+"/", "token", cfg.Token != "")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// consoleVerifier is what checks receipt signatures on the console: the
// service key, answering to the service's DID.
func consoleVerifier(s principal.Signer) principal.Verifier { return s.Verifier() }

// invocationRate samples egressd_invocations_total and answers the rate
// over the last minute.
type invocationRate struct {
	reg     *prometheus.Registry
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	total float64
}

const rateWindow = time.Minute

// run samples every few seconds until ctx ends.
func (r *invocationRate) run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		r.sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *invocationRate) sample(now time.Time) {
	total := 0.0
	families, _ := r.reg.Gather()
	for _, f := range families {
		if f.GetName() != "egressd_invocations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSample{now, total})
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) >= rateWindow {
		r.samples = r.samples[1:]
	}
}

// perSecond is the rate between the oldest and newest samples.
func (r *invocationRate) perSecond() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 2 {
		return 0
	}
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return (last.total - first.total) / secs
}

// lastReconcileFile is where `billing reconcile` leaves its outcome in the
// data directory, for the console of a serve on the same directory.
const lastReconcileFile = "last-reconcile.json"

// saveReconcile records a reconcile's outcome in the data directory, when
// there is one (a reconcile run on AWS alone has none); a failure to write
// it is reported, never the reconcile's failure.
func saveReconcile(dataDir string, r console.Reconcile) error {
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, lastReconcileFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, lastReconcileFile))
}

// loadReconcile reads the last outcome, nil when there was none.
func loadReconcile(dataDir string) (*console.Reconcile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, lastReconcileFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r console.Reconcile
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", lastReconcileFile, err)
	}
	return &r, nil
}
