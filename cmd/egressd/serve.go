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
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"golang.org/x/net/netutil"

	"github.com/egressd/egressd/account"
	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/console"
	"github.com/egressd/egressd/server"
	"github.com/egressd/egressd/server/wire"
)

// serveFlags are the flags of `egressd serve`.
type serveFlags struct {
	backend          backendFlags
	listen           string
	key, didWeb      string
	aliases          stringList
	principalMapping stringList
	resolveDIDWeb    stringList
	didWebTTL        time.Duration

	maxBodyBytes      int64
	maxInvocations    int
	maxProofs         int
	maxDepth          int
	maxBytesPerEvent  int64
	maxValidation     int
	maxBlocks         int
	maxBlockBytes     int
	maxNesting        int
	maxInflightBytes  int64
	admissionWait     time.Duration
	maxConnections    int
	metricsListen     string
	metricsExplicit   bool
	trustedIssuers    stringList
	maxServedAtAge    time.Duration
	maxServedAtAhead  time.Duration
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	logFormat         string
	logLevel          string
	pprofListen       string
	adminListen       string
	adminToken        string

	worker        bool
	stripe        stripeFlags
	webhookSecret string
	workerTuning  workerFlags
}

func serveCommand() *ffcli.Command {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f.backend.register(fs)
	fs.DurationVar(&f.backend.customerTTL, "customer-ttl", 10*time.Second, "with --tables: how long a space's customer, once found, is remembered (spaces not found are asked again every time; 0 remembers nothing)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on (use 0.0.0.0:8080 behind a load balancer)")
	fs.StringVar(&f.key, "key", "", "service key, ed25519 in multibase (Mg...); default: the key in the data directory, generated on first start")
	fs.StringVar(&f.didWeb, "did", "", "public did:web identity of the service (for example did:web:egress.example.com); default: the key's did:key")
	fs.Var(&f.aliases, "alias", "another DID accepted as audience and as provider of consumer records (repeatable)")
	fs.Var(&f.principalMapping, "principal-mapping", "map a gateway's did:web to its did:key: did:web:gw.example=did:key:z6Mk... (repeatable)")
	fs.Var(&f.resolveDIDWeb, "resolve-did-web", "resolve unmapped gateway did:web identities of this host from https://<host>/.well-known/did.json: a host, host:port, or *.domain for its subdomains (repeatable, or comma-separated); default: none")
	fs.DurationVar(&f.didWebTTL, "did-web-ttl", 10*time.Minute, "how long a resolved did:web key is cached")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body accepted (413 past it)")
	fs.IntVar(&f.maxInvocations, "max-invocations", server.DefaultMaxInvocations, "most invocations accepted in one request (413 past it)")
	fs.IntVar(&f.maxProofs, "max-proofs", server.DefaultMaxProofs, "most proofs under one invocation, counted along every delegation chain (ProofLimitExceeded past it)")
	fs.IntVar(&f.maxDepth, "max-delegation-depth", server.DefaultMaxDepth, "longest delegation chain from the space to the invoker (ProofLimitExceeded past it)")
	fs.Int64Var(&f.maxBytesPerEvent, "max-bytes-per-event", server.DefaultMaxBytesPerEvent, "largest nb.bytes one record may carry (BytesOutOfRange past it); default 1 TiB")
	fs.IntVar(&f.maxValidation, "max-validation-steps", server.DefaultMaxValidationSteps, "most delegations checked to validate one invocation, whatever its proofs (ValidationLimitExceeded past it)")
	fs.IntVar(&f.maxBlocks, "max-blocks", wire.DefaultMaxBlocks, "most blocks in one request (413 MessageLimitExceeded past it)")
	fs.IntVar(&f.maxBlockBytes, "max-block-bytes", wire.DefaultMaxBlockBytes, "largest block in a request (413 MessageLimitExceeded past it)")
	fs.IntVar(&f.maxNesting, "max-nesting", wire.DefaultMaxDepth, "deepest nesting of lists and maps inside a block (400 NonCanonicalBlock past it)")
	fs.Int64Var(&f.maxInflightBytes, "max-inflight-bytes", server.DefaultMaxInflightBytes, "request bodies held at once, in bytes: the memory budget (503 with Retry-After when full for --admission-wait)")
	fs.DurationVar(&f.admissionWait, "admission-wait", server.DefaultAdmissionWait, "how long a request may wait for room in --max-inflight-bytes")
	fs.IntVar(&f.maxConnections, "max-connections", 1024, "most client connections open at once; more wait to be accepted")
	fs.StringVar(&f.adminListen, "admin-listen", "", "address to serve the operator console and its JSON API on (for example 127.0.0.1:9090); default: none. Beyond loopback it needs --admin-token")
	// No default shown: --help must not print a secret.
	fs.StringVar(&f.adminToken, "admin-token", "", "token the console asks for (a login form; API clients send Authorization: Bearer TOKEN); env EGRESSD_ADMIN_TOKEN")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9464", "address to serve Prometheus metrics on at /metrics, apart from --listen; \"off\" serves none (when the default address is taken, serve warns and goes on without it)")
	fs.Var(&f.trustedIssuers, "trusted-issuer", "only accept invocations issued by this DID, for example your gateway's did:web (repeatable; default: any holder of a space delegation)")
	fs.DurationVar(&f.maxServedAtAge, "max-served-at-age", server.DefaultMaxAge, "oldest servedAt accepted (Stripe bills at most 35 days back)")
	fs.DurationVar(&f.maxServedAtAhead, "max-served-at-ahead", server.DefaultMaxAhead, "furthest servedAt accepted in the future (Stripe allows 5 minutes)")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", 5*time.Second, "time allowed to read request headers")
	fs.DurationVar(&f.readTimeout, "read-timeout", 30*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&f.writeTimeout, "write-timeout", 60*time.Second, "time allowed to handle a request and write the reply")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection is kept")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "time allowed for requests in flight on SIGTERM")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.pprofListen, "pprof-listen", "", "serve Go's pprof profiles on this address (for example 127.0.0.1:6060); off by default")
	fs.BoolVar(&f.worker, "worker", true, "run the billing worker in this process; set false when egressd worker sidecars do the billing")
	f.stripe.register(fs)
	// No default shown: --help must not print a secret.
	fs.StringVar(&f.webhookSecret, "stripe-webhook-secret", "", "signing secret (whsec_...) of the Stripe event destination that sends v1.billing.meter.error_report_triggered and v1.billing.meter.no_meter_found thin events to POST "+stripeWebhookPath+"; the entries of the events Stripe rejects become rejected. Needs a Stripe key; default: $STRIPE_WEBHOOK_SECRET, and without one the endpoint is not served")
	f.workerTuning.register(fs)
	return command("serve",
		"egressd serve [--data-dir DIR] [--listen ADDR] [--did did:web:...] [--key Mg...] [flags]",
		"run the service (and, with billing, its worker)", fs,
		func(ctx context.Context, args []string) error {
			fs.Visit(func(fl *flag.Flag) { f.metricsExplicit = f.metricsExplicit || fl.Name == "metrics-listen" })
			return runServe(ctx, f)
		})
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: expected text or json", format)
}

func runServe(ctx context.Context, f serveFlags) error {
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	tuneGC()
	signer, created, err := loadSigner(f.backend.dataDir, f.key, f.didWeb, true)
	if err != nil {
		return err
	}
	if f.backend.storacha {
		if err := checkStorachaProvider(signer.DID().String(), "the service DID", "give its did:web identity with --did did:web:..."); err != nil {
			return err
		}
	}
	if created {
		log.Info("generated a new service key", "file", f.backend.dataDir+"/"+keyFile, "did", signer.DID().String())
	}
	var aliases []did.DID
	for _, a := range f.aliases {
		d, err := did.Parse(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("--alias %q: %w", a, err)
		}
		aliases = append(aliases, d)
	}
	var trusted []did.DID
	for _, a := range f.trustedIssuers {
		d, err := did.Parse(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("--trusted-issuer %q: %w", a, err)
		}
		trusted = append(trusted, d)
	}
	mapping, err := server.ParsePrincipalMapping(f.principalMapping)
	if err != nil {
		return fmt.Errorf("--principal-mapping: %w", err)
	}
	var fetcher *server.DIDWebFetcher
	if hosts := splitList(f.resolveDIDWeb); len(hosts) > 0 {
		fetcher = &server.DIDWebFetcher{Client: &http.Client{Timeout: 5 * time.Second}, TTL: f.didWebTTL, AllowedHosts: hosts}
	}

	if f.adminListen != "" {
		if err := checkAdminListen(f.adminListen, f.adminToken); err != nil {
			return err
		}
	}

	f.backend.queueVisibility = f.workerTuning.visibility
	f.backend.log = log
	b, err := f.backend.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector())
	providers := []string{signer.DID().String()}
	for _, a := range aliases {
		providers = append(providers, a.String())
	}
	egress := &account.Egress{Customers: b.Customers, Totals: b.Ledger, Providers: providers}
	srv, err := server.New(server.Config{
		Capabilities:       []server.Capability{egress.Capability()},
		Signer:             signer,
		Aliases:            aliases,
		Customers:          b.Customers,
		Queue:              b.Queue,
		Receipts:           b.Receipts,
		Journal:            b.Journal,
		Revocations:        b.Revocations,
		Principals:         server.NewPrincipalResolver(mapping, fetcher),
		MaxBodyBytes:       f.maxBodyBytes,
		MaxInvocations:     f.maxInvocations,
		MaxProofs:          f.maxProofs,
		MaxDelegationDepth: f.maxDepth,
		MaxBytesPerEvent:   f.maxBytesPerEvent,
		MaxValidationSteps: f.maxValidation,
		Wire:               wire.Limits{MaxBlocks: f.maxBlocks, MaxBlockBytes: f.maxBlockBytes, MaxDepth: f.maxNesting},
		MaxInflightBytes:   f.maxInflightBytes,
		AdmissionWait:      f.admissionWait,
		TrustedIssuers:     trusted,
		MaxAge:             f.maxServedAtAge,
		MaxAhead:           f.maxServedAtAhead,
		Version:            version,
		Logger:             log,
		Registry:           reg,
	})
	if err != nil {
		return err
	}
	// The worker comes after the server: they share the registry, and the
	// server owns the queue-depth series.
	var worker *billing.Worker
	if f.worker {
		sink, err := f.stripe.sink(log)
		if err != nil {
			return err
		}
		if err := checkStripe(ctx, sink); err != nil {
			return err
		}
		if worker, err = f.workerTuning.newWorker(b, sink, log, reg); err != nil {
			return err
		}
	}

	if f.adminListen != "" {
		stop, err := f.startConsole(ctx, b, worker, signer, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	var handler http.Handler = srv
	if hook, err := f.stripeWebhook(b.Ledger, log, reg); err != nil {
		return err
	} else if hook != nil {
		handler = withStripeWebhook(srv, hook)
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", f.listen, err)
	}
	ln = netutil.LimitListener(ln, f.maxConnections)
	if f.metricsListen != "off" && f.metricsListen != "" {
		stop, err := serveMetrics(f.metricsListen, reg, srv.Ready, log)
		switch {
		case err != nil && f.metricsExplicit:
			return err
		case err != nil:
			log.Warn("metrics not served: the default --metrics-listen address is taken; set --metrics-listen to serve them", "addr", f.metricsListen, "err", err)
		default:
			defer stop()
		}
	}
	if f.pprofListen != "" {
		stop, err := servePprof(f.pprofListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	httpServer := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: f.readHeaderTimeout,
		ReadTimeout:       f.readTimeout,
		WriteTimeout:      f.writeTimeout,
		IdleTimeout:       f.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("egressd listening", append([]any{"addr", ln.Addr().String(), "did", signer.DID().String(), "version", version}, f.backend.describe()...)...)
	// The line below is for people and scripts: it names the address actually
	// bound. With --log-format json it is a JSON object like every other line
	// the process writes, so that a log collector reading stdout parses it.
	if f.logFormat == "json" {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Info("egressd listening", "did", signer.DID().String(), "url", "http://"+ln.Addr().String())
	} else {
		fmt.Printf("egressd %s listening on http://%s\n", signer.DID(), ln.Addr())
	}

	// The worker stops with the server, whichever way the server stops,
	// and finishes (or hands back) its events before the stores close.
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan struct{})
	if worker != nil {
		go func() {
			defer close(workerDone)
			if err := worker.Run(workerCtx); err != nil {
				log.Error("billing worker stopped", "err", err)
			}
		}()
		defer func() { stopWorker(); <-workerDone }()
	}

	errc := make(chan error, 1)
	go func() { errc <- httpServer.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// startConsole serves the operator console over the stores. Re-drives go
// through the worker, or, when sidecars do the billing, through one made
// for re-drives alone (as `billing redrive` makes one).
func (f *serveFlags) startConsole(ctx context.Context, b *stores, worker *billing.Worker, signer principal.Signer, reg *prometheus.Registry, log *slog.Logger) (func(), error) {
	redriver := worker
	if redriver == nil {
		sink, err := f.stripe.sink(log)
		if err != nil {
			return nil, err
		}
		if redriver, err = f.workerTuning.newWorker(b, sink, log, prometheus.NewRegistry()); err != nil {
			return nil, err
		}
	}
	rate := &invocationRate{reg: reg}
	rateCtx, stopRate := context.WithCancel(ctx)
	go rate.run(rateCtx)
	stop, err := serveConsole(f.adminListen, console.Config{
		Source: &console.Stores{
			Ledger: b.Ledger, Queue: b.Queue, Accounts: b.Customers, Receipts: b.Receipts,
			Redriver:       redriver,
			InvocationRate: rate.perSecond,
			LastReconcile:  func() (*console.Reconcile, error) { return loadReconcile(f.backend.dataDir) },
		},
		Service: consoleVerifier(signer),
		Token:   f.adminToken,
		Log:     log,
	}, log)
	if err != nil {
		stopRate()
		return nil, err
	}
	return func() { stop(); stopRate() }, nil
}

// stripeWebhookPath is where Stripe's event destination delivers.
const stripeWebhookPath = "/stripe/webhook"

// stripeWebhook builds the handler of Stripe's asynchronous error reports,
// or returns nil when no signing secret is set.
func (f *serveFlags) stripeWebhook(ledger billing.Ledger, log *slog.Logger, reg *prometheus.Registry) (http.Handler, error) {
	secret := f.webhookSecret
	if secret == "" {
		secret = os.Getenv("STRIPE_WEBHOOK_SECRET")
	}
	if secret == "" {
		return nil, nil
	}
	key := f.stripe.secretKey()
	if key == "" {
		return nil, errors.New("--stripe-webhook-secret needs a Stripe key (--stripe-key or STRIPE_SECRET_KEY) to fetch the events it is told about")
	}
	hook, err := stripe.NewWebhook(stripe.WebhookConfig{Secret: secret, Key: key, URL: f.stripe.url, Ledger: ledger, Timeout: f.stripe.timeout, Logger: log, Registry: reg})
	if err != nil {
		return nil, fmt.Errorf("configuring the Stripe webhook: %w", err)
	}
	return hook, nil
}

// withStripeWebhook sends requests for stripeWebhookPath to hook and every
// other request to next, unchanged.
func withStripeWebhook(next, hook http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stripeWebhookPath {
			hook.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
