// Package console is the operator's web console and its JSON API: egress and
// billing figures read through a Source, receipts checked against the
// service key, and a re-drive of entries that were not billed. It is an
// http.Handler meant for a separate, private listener (serve --admin-listen).
package console

import (
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/storacha/go-ucanto/principal"
)

// Config configures the console.
type Config struct {
	Source Source
	// Service checks receipt signatures: the service key's verifier (wrapped
	// in the service's DID when that is a did:web). Nil: not checked.
	Service principal.Verifier
	// Token, when set, is required: a login form for browsers, a Bearer
	// header for the API. Empty: no authentication.
	Token string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log gets the errors the caller is not shown; nil discards them.
	Log *slog.Logger
}

// Limits on what a caller can send: every form and API body here is a few
// short strings.
const (
	maxBody   = 64 << 10
	maxField  = 4 << 10
	csrfField = "csrf"
)

type console struct {
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	pages *pages
	// secret keys the CSRF and flash-message HMACs. Random per process: a
	// restart only costs a reload of the open form.
	secret []byte
}

// New returns the console's handler.
func New(cfg Config) http.Handler {
	c := &console{cfg: cfg, now: cfg.Now, log: cfg.Log, pages: loadPages(), secret: make([]byte, 32)}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	// crypto/rand.Read never fails (it crashes the program instead).
	rand.Read(c.secret)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overviewPage)
	mux.HandleFunc("GET /customers", c.customersPage)
	mux.HandleFunc("GET /customers/{customer}", c.customerPage)
	mux.HandleFunc("GET /receipt/{cid}", c.receiptPage)
	mux.HandleFunc("GET /problems", c.problemsPage)
	mux.HandleFunc("POST /problems/redrive", c.redrivePost)
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.loginPost)
	mux.HandleFunc("POST /logout", c.logoutPost)

	// The API checks methods itself so that a wrong one gets a JSON error.
	mux.Handle("/api/overview", apiMethod(http.MethodGet, c.apiOverview))
	mux.Handle("/api/customers", apiMethod(http.MethodGet, c.apiCustomers))
	mux.Handle("/api/customers/{customer}", apiMethod(http.MethodGet, c.apiCustomer))
	mux.Handle("/api/problems", apiMethod(http.MethodGet, c.apiProblems))
	mux.Handle("/api/redrive", apiMethod(http.MethodPost, c.apiRedrive))
	mux.Handle("/api/receipt/{cid}", apiMethod(http.MethodGet, c.apiReceipt))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		c.apiError(w, r, http.StatusNotFound, "NotFound", "no such API endpoint", nil)
	})

	return c.guard(c.authenticate(mux))
}

// guard sets the security headers every response carries, bounds request
// bodies and turns a panic into a logged 500 rather than a dropped
// connection with a stack trace in someone's terminal.
func (c *console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Styles are inline (one <style> block and SVG attributes); nothing else
		// is, and there is no script at all.
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; script-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		// Money figures and receipts: neither browsers nor proxies keep them.
		h.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				c.log.Error("console: panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// apiMethod answers a wrong method with a JSON 405.
func apiMethod(method string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, apiErrorBody{Error: apiErrorDetail{Name: "MethodNotAllowed", Message: "use " + method}})
			return
		}
		h(w, r)
	})
}
