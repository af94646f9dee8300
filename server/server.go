// Package server is egressd's HTTP face: it takes ucanto agent messages from
// gateways, validates each invocation and hands it to the capability
// registered under its name (capability.go; egress records in record.go,
// ucan/revoke in revoke.go), queues the billing events it leaves, stores the
// signed receipt and replies; and it serves receipts, the service identity,
// liveness (/healthz), readiness (/readyz: the stores can be written) and
// metrics. Every request is counted by route and status and logged once
// (access.go).
package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"golang.org/x/sync/semaphore"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/server/wire"
)

// Defaults for the limits in Config.
const (
	DefaultMaxBodyBytes   = 8 << 20
	DefaultMaxInvocations = 1000
	DefaultMaxProofs      = 32
	DefaultMaxDepth       = 8
	DefaultMaxAge         = 35 * 24 * time.Hour // Stripe's limit for meter event timestamps
	DefaultMaxAhead       = 5 * time.Minute     // Stripe's limit for meter event timestamps
	// DefaultMaxBytesPerEvent is 1 TiB: more than any single response serves,
	// and far enough below 2^63 that a month of them cannot overflow a total.
	DefaultMaxBytesPerEvent = 1 << 40
	// DefaultMaxValidationSteps bounds the delegations the validator may
	// check for one invocation: a gateway's chain takes two or three.
	DefaultMaxValidationSteps = 64
	// DefaultMaxInflightBytes bounds the request bodies held at once. Decoding
	// and validating a message costs several times its size, so this keeps
	// the server inside its 128 MiB soft memory limit under a flood.
	DefaultMaxInflightBytes = 16 << 20
	// DefaultAdmissionWait is how long a request may wait for room in the
	// in-flight budget before it is answered 503 with Retry-After.
	DefaultAdmissionWait = 5 * time.Second
)

// signatureCacheSize is how many verified signatures are remembered: about a
// megabyte, far more than the delegations of all gateways in use at once.
const signatureCacheSize = 16384

// Config is everything the server needs. Signer, Customers, Queue and
// Receipts are required; the rest have defaults.
type Config struct {
	// Signer is the service identity that signs receipts; its DID (a did:key,
	// or a did:web when wrapped) is the audience invocations must name.
	Signer principal.Signer
	// Aliases are other DIDs accepted as audience and as provider in
	// consumer records (Storacha runs two provider DIDs).
	Aliases []did.DID

	Customers customers.Store
	Queue     billing.Queue
	Receipts  receipts.Store
	// Journal, when set, records a message's events and receipts in one
	// atomic step (the embedded backend keeps both in one file). When nil,
	// the events are enqueued on Queue first, then the receipts put in
	// Receipts, so that an ok receipt still always means a queued event.
	Journal Journal
	// Revocations holds the delegations revoked with ucan/revoke; every
	// delegation chain is checked against it. nil: nothing is ever revoked
	// and ucan/revoke is not served.
	Revocations Revocations

	// Capabilities are served besides the built-in ones (the two record
	// names, and ucan/revoke when Revocations is set), and listed after them
	// by GET /. A name may be served once.
	Capabilities []Capability

	// Principals maps did:web identities of gateways to their did:key.
	Principals *PrincipalResolver
	// TrustedIssuers, when not empty, are the only DIDs whose invocations are
	// accepted, even with a valid delegation from the space: an operator's
	// gateways, so a space owner cannot record egress through another agent.
	TrustedIssuers []did.DID

	// MaxBodyBytes bounds a request body (413 past it).
	MaxBodyBytes int64
	// MaxInvocations bounds the invocations in one message (413 past it).
	MaxInvocations int
	// MaxProofs bounds the proofs under one invocation, counted as the
	// validator would walk them, and MaxDelegationDepth the length of a
	// delegation chain; past either the invocation fails with ProofLimitExceeded.
	MaxProofs, MaxDelegationDepth int
	// MaxAge and MaxAhead bound servedAt around now.
	MaxAge, MaxAhead time.Duration
	// MaxBytesPerEvent bounds nb.bytes of one record (BytesOutOfRange past it).
	MaxBytesPerEvent int64
	// MaxValidationSteps bounds the delegations checked while validating one
	// invocation, whatever the shape of its proofs (ValidationLimitExceeded
	// past it): the validator's search can otherwise grow factorially.
	MaxValidationSteps int
	// Wire bounds the blocks of a message: how many, how large, how deeply
	// nested (zero fields take the wire package defaults).
	Wire wire.Limits
	// MaxInflightBytes bounds the request bodies held at once; a request
	// that finds no room within AdmissionWait is answered 503 Retry-After.
	MaxInflightBytes int64
	AdmissionWait    time.Duration

	// Version is reported by GET /.
	Version string
	Logger  *slog.Logger
	// Registry receives the server's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Journal durably records what a message's ok invocations leave behind:
// their billing events and their receipts, all of them or none.
type Journal interface {
	Record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error
}

// Server is the egressd http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *metrics
	// audiences are the DIDs invocations may be addressed to, service first.
	audiences []string
	// trusted is the set of TrustedIssuers; nil accepts any issuer.
	trusted map[string]bool
	// signatures remembers verified signatures (of delegations, mostly).
	signatures *signatureCache
	// inflight holds the request bodies being worked on, in bytes.
	inflight *semaphore.Weighted
	// claims holds the invocations being recorded right now, by identity.
	claims *claims
	// decoded keeps delegations decoded across messages, by CID.
	decoded *decodedDelegations
	// didNames remembers the strings of DIDs.
	didNames *didNames
	// twins remembers the other encoding of proof-less delegations, by CID.
	twins *lru.Cache[string, string]
	// capabilities are the served capabilities by ability, and abilities
	// their names in the order GET / lists them.
	capabilities map[string]Capability
	abilities    []string
	// switchedOff are built-in abilities not served by this configuration,
	// with the reason a caller is given.
	switchedOff map[string]string
	// ready probes the stores, cached (GET /readyz).
	ready func(context.Context) error
}

// New checks cfg, fills in defaults and builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Signer == nil || cfg.Customers == nil || cfg.Queue == nil || cfg.Receipts == nil {
		return nil, errMissingConfig
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxInvocations <= 0 {
		cfg.MaxInvocations = DefaultMaxInvocations
	}
	if cfg.MaxProofs <= 0 {
		cfg.MaxProofs = DefaultMaxProofs
	}
	if cfg.MaxDelegationDepth <= 0 {
		cfg.MaxDelegationDepth = DefaultMaxDepth
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxAhead <= 0 {
		cfg.MaxAhead = DefaultMaxAhead
	}
	if cfg.MaxBytesPerEvent <= 0 {
		cfg.MaxBytesPerEvent = DefaultMaxBytesPerEvent
	}
	if cfg.MaxValidationSteps <= 0 {
		cfg.MaxValidationSteps = DefaultMaxValidationSteps
	}
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.AdmissionWait <= 0 {
		cfg.AdmissionWait = DefaultAdmissionWait
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
	if cfg.Principals == nil {
		cfg.Principals = NewPrincipalResolver(nil, nil)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), signatures: newSignatureCache(signatureCacheSize),
		inflight: semaphore.NewWeighted(cfg.MaxInflightBytes), claims: newClaims(), decoded: newDecodedDelegations(), didNames: newDIDNames()}
	s.twins, _ = lru.New[string, string](signatureCacheSize)
	s.audiences = []string{cfg.Signer.DID().String()}
	for _, a := range cfg.Aliases {
		s.audiences = append(s.audiences, a.String())
	}
	if len(cfg.TrustedIssuers) > 0 {
		s.trusted = map[string]bool{}
		for _, d := range cfg.TrustedIssuers {
			s.trusted[d.String()] = true
		}
	}
	s.ready = CachedProbe(s.probeStores, cfg.Logger)
	if err := s.register(); err != nil {
		return nil, err
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Registry, cfg.Queue); err != nil {
		return nil, err
	}

	s.mux.HandleFunc("POST /{$}", s.handleInvoke)
	s.mux.HandleFunc("GET /{$}", s.handleInfo)
	s.mux.HandleFunc("GET /receipt/{cid}", s.handleReceipt)
	s.mux.HandleFunc("GET /.well-known/did.json", s.handleDIDDocument)
	s.mux.Handle("GET /healthz", HealthHandler())
	s.mux.Handle("GET /readyz", ReadyHandler(s.Ready))
	return s, nil
}

// MetricsHandler serves the server's metrics in Prometheus' format. It is
// not on the public handler: operators serve it on a listener of their own
// (serve --metrics-listen, loopback by default).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
}

// Info is what GET / answers.
type Info struct {
	DID          string   `json:"did"`
	Aliases      []string `json:"aliases,omitempty"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities"`
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Info{
		DID:          s.audiences[0],
		Aliases:      s.audiences[1:],
		Version:      s.cfg.Version,
		Capabilities: s.served(),
	})
}

// served lists the capabilities this server answers.
func (s *Server) served() []string { return s.abilities }

// register serves the built-in capabilities and those of Config.Capabilities.
func (s *Server) register() error {
	s.capabilities = map[string]Capability{}
	s.switchedOff = map[string]string{}
	all := []Capability{recordCapability(&RecordService{
		MaxBytesPerEvent: s.cfg.MaxBytesPerEvent,
		MaxAge:           s.cfg.MaxAge,
		MaxAhead:         s.cfg.MaxAhead,
		Now:              s.cfg.Now,
		Providers:        s.audiences,
	})}
	if s.cfg.Revocations != nil {
		all = append(all, revokeCapability(&RevokeService{Revocations: s.cfg.Revocations, Logger: s.cfg.Logger, Now: s.cfg.Now}))
	} else {
		s.switchedOff[capabilities.UcanRevoke] = "ucan/revoke is not served: this service keeps no revocations"
	}
	for _, c := range append(all, s.cfg.Capabilities...) {
		for _, can := range c.Abilities() {
			if _, dup := s.capabilities[can]; dup {
				return fmt.Errorf("server: %s is served twice", can)
			}
			s.capabilities[can] = c
			s.abilities = append(s.abilities, can)
			delete(s.switchedOff, can)
		}
	}
	return nil
}

// httpError is the JSON body of every non-ucanto error response: the same
// {name, message} shape as a failure in a receipt.
type httpError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, name, message string) {
	writeJSON(w, status, httpError{name, message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
