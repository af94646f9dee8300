package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/server"
)

// storachaMeterEvent is the event_name of Storacha's Stripe meter for
// gateway egress (w3infra stacks/billing-stack.js).
const storachaMeterEvent = "gateway-egress-traffic"

// stripeFlags configure the Stripe sink.
type stripeFlags struct {
	key, url, meterEvent, api string
	rate                      float64
	timeout                   time.Duration
	// fs is the command's flag set, to read its --storacha once parsed: the
	// meter's default depends on it.
	fs *flag.FlagSet
}

func (f *stripeFlags) register(fs *flag.FlagSet) {
	f.fs = fs
	// No default shown for the key: --help must not print a secret.
	fs.StringVar(&f.key, "stripe-key", "", "Stripe secret key (sk_live_..., sk_test_..., rk_...); default: $STRIPE_SECRET_KEY. Without a key events are counted and marked unbillable (\"no billing sink configured\") until a billing redrive")
	fs.StringVar(&f.url, "stripe-url", "", "Stripe API base URL, to use stripe-mock or a proxy (for example http://127.0.0.1:12111); default: https://api.stripe.com")
	// No default at registration: it depends on --storacha, read after parsing.
	fs.StringVar(&f.meterEvent, "stripe-meter-event", "", "event_name of the Stripe billing meter that egress is reported to; default: "+stripe.DefaultEventName+", or "+storachaMeterEvent+" (Storacha's meter) with --storacha")
	fs.DurationVar(&f.timeout, "stripe-timeout", stripe.DefaultTimeout, "time allowed for one Stripe call; a call that times out is retried (the identifier keeps it from counting twice)")
	fs.Float64Var(&f.rate, "stripe-rate", stripe.DefaultRate, "most meter-event requests per second to Stripe, all customers together (a sandbox allows 25/s, live mode 1000/s; on v2 each request carries up to 100 events)")
	fs.StringVar(&f.api, "stripe-api", "v1", "Stripe meter event API: v1 (one call per customer at a time, a customer's events of one --billing-window summed into one meter event) or v2 (meter event streams: up to 100 events per request, each event its own meter event)")
}

// eventName is --stripe-meter-event, or when it is not set the default:
// Storacha's meter with --storacha, else stripe.DefaultEventName.
func (f *stripeFlags) eventName() string {
	if f.meterEvent != "" {
		return f.meterEvent
	}
	if f.fs != nil {
		if st := f.fs.Lookup("storacha"); st != nil && st.Value.String() == "true" {
			return storachaMeterEvent
		}
	}
	return stripe.DefaultEventName
}

// secretKey is --stripe-key, or $STRIPE_SECRET_KEY when it is not set.
func (f *stripeFlags) secretKey() string {
	if f.key != "" {
		return f.key
	}
	return os.Getenv("STRIPE_SECRET_KEY")
}

// sink builds the Stripe sink, or returns nil when no key is set.
func (f *stripeFlags) sink(log *slog.Logger) (billing.Sink, error) {
	if f.api != "v1" && f.api != "v2" {
		return nil, fmt.Errorf("--stripe-api %q: want v1 or v2", f.api)
	}
	key := f.secretKey()
	if key == "" {
		log.Warn("no Stripe key (--stripe-key or STRIPE_SECRET_KEY): events are counted and marked unbillable until a redrive with a key")
		return nil, nil
	}
	r, err := stripe.New(stripe.Config{Key: key, URL: f.url, API: f.api, EventName: f.eventName(), Rate: f.rate, Timeout: f.timeout, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("configuring Stripe: %w", err)
	}
	return r, nil
}

// checkStripe stops a worker at start when Stripe refuses the key or has
// no meter for the event name: better than finding it event by event.
func checkStripe(ctx context.Context, sink billing.Sink) error {
	r, ok := sink.(*stripe.Reporter)
	if !ok || r == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return r.Check(ctx)
}

// workerFlags tune the billing worker, in serve and in the sidecar alike.
type workerFlags struct {
	concurrency, batch, maxTries  int
	wait, backoffBase, backoffMax time.Duration
	accountTTL, drain, visibility time.Duration
	window                        time.Duration
}

// registerSettle registers what shapes Stripe calls: worker and redrive.
func (f *workerFlags) registerSettle(fs *flag.FlagSet) {
	fs.IntVar(&f.concurrency, "worker-concurrency", billing.DefaultConcurrency, "customers billed at once on --stripe-api v1 (each customer's calls always go one at a time), lanes of customers on v2")
	fs.IntVar(&f.maxTries, "worker-max-tries", billing.DefaultMaxTries, "Stripe calls per batch (429, 5xx, network errors) before it is marked failed")
	fs.DurationVar(&f.backoffBase, "worker-backoff", billing.DefaultBackoffBase, "first wait before retrying a failed Stripe call; doubles each try, with jitter")
	fs.DurationVar(&f.backoffMax, "worker-backoff-max", billing.DefaultBackoffMax, "longest wait between Stripe tries")
}

// register registers every worker flag: serve and the sidecar.
func (f *workerFlags) register(fs *flag.FlagSet) {
	f.registerSettle(fs)
	fs.IntVar(&f.batch, "worker-batch", billing.DefaultBatch, "most queue messages taken per receive")
	fs.DurationVar(&f.window, "billing-window", billing.DefaultWindow, "on --stripe-api v1, a customer's events served in the same UTC window of this length are reported as one meter event carrying their sum (whole seconds dividing an hour: 1m, 5m, 15m, 1h ...)")
	fs.DurationVar(&f.wait, "worker-wait", billing.DefaultWait, "how long one receive waits for new messages")
	fs.DurationVar(&f.accountTTL, "worker-account-ttl", billing.DefaultAccountTTL, "how long a customer's Stripe account is cached (a customer set is seen after at most this)")
	fs.DurationVar(&f.drain, "worker-drain-timeout", billing.DefaultDrainTimeout, "on shutdown, time allowed for the events being reported; the rest go back on the queue")
	fs.DurationVar(&f.visibility, "queue-visibility", billing.DefaultVisibility, "how long a worker holds a queue message before another may take it (kept extended while it works; a killed worker's events are retried after this)")
}

// newWorker builds a worker over the backend's stores.
func (f *workerFlags) newWorker(b *stores, sink billing.Sink, log *slog.Logger, reg *prometheus.Registry) (*billing.Worker, error) {
	return billing.NewWorker(billing.WorkerConfig{
		Queue:        b.Queue,
		Ledger:       b.Ledger,
		Accounts:     billingAccounts{b.Customers},
		CustomerLock: b.CustomerLock,
		Sink:         sink,
		Window:       f.window,
		Concurrency:  f.concurrency,
		Batch:        f.batch,
		Wait:         f.wait,
		Visibility:   f.visibility,
		MaxTries:     f.maxTries,
		BackoffBase:  f.backoffBase,
		BackoffMax:   f.backoffMax,
		AccountTTL:   f.accountTTL,
		DrainTimeout: f.drain,
		Logger:       log,
		Registry:     reg,
	})
}

// billingAccounts answers the worker's account lookups from the customer
// store, in billing's terms: billing does not know the customers package.
type billingAccounts struct{ store customers.Store }

func (a billingAccounts) Account(ctx context.Context, customer string) (string, error) {
	account, err := a.store.Account(ctx, customer)
	if errors.Is(err, customers.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", billing.ErrUnknownCustomer, customer)
	}
	return account, err
}

func workerCommand() *ffcli.Command {
	var (
		backend             backendFlags
		stripeCfg           stripeFlags
		worker              workerFlags
		metricsListen       string
		logFormat, logLevel string
	)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	backend.register(fs)
	stripeCfg.register(fs)
	worker.register(fs)
	fs.StringVar(&metricsListen, "metrics-listen", "", "address to serve Prometheus metrics on at /metrics (for example 127.0.0.1:9091); default: none")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return command("worker",
		"egressd worker --data-dir DIR [--stripe-key sk_...] [--stripe-url URL] [flags]",
		"run the billing worker alone (a sidecar; run `serve --worker=false` beside it)", fs,
		func(ctx context.Context, args []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			tuneGC()
			backend.queueVisibility = worker.visibility
			backend.log = log
			b, err := backend.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			sink, err := stripeCfg.sink(log)
			if err != nil {
				return err
			}
			if err := checkStripe(ctx, sink); err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector())
			w, err := worker.newWorker(b, sink, log, reg)
			if err != nil {
				return err
			}
			if metricsListen != "" {
				// The worker writes the queue (acks) and the ledger, and
				// reads the customers' accounts.
				ready := server.CachedProbe(func(ctx context.Context) error {
					return server.CheckReady(ctx,
						server.NamedStore{Name: "queue", Store: b.Queue},
						server.NamedStore{Name: "ledger", Store: b.Ledger},
						server.NamedStore{Name: "customers", Store: b.Customers})
				}, log)
				stop, err := serveMetrics(metricsListen, reg, ready, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			log.Info("billing worker started", append([]any{"stripe", sink != nil, "stripe_api", stripeCfg.api, "stripe_url", stripeCfg.url, "meter_event", stripeCfg.eventName()}, backend.describe()...)...)
			err = w.Run(ctx)
			log.Info("billing worker stopped")
			return err
		})
}

// serveMetrics serves reg at addr/metrics, with liveness at /healthz and
// readiness (ready, the stores can be written) at /readyz, until the
// returned stop is called: the monitoring listener is what an orchestrator
// probes when the process has no public one (the worker).
func serveMetrics(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", server.HealthHandler())
	mux.Handle("GET /readyz", server.ReadyHandler(ready))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
