package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ServeHTTP routes the request, answers what no route takes (unknown paths,
// wrong methods) in the same JSON shape as every other error, counts the
// answer by route and status, and logs one access line for it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	route := "other"
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.answerUnrouted(rec, r)
	} else {
		s.mux.ServeHTTP(rec, r)
		route = routeName(r.Pattern)
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	elapsed := time.Since(start)
	code := strconv.Itoa(status)
	s.metrics.requests.WithLabelValues(route, code).Inc()
	if route == "invoke" {
		s.metrics.requestSeconds.WithLabelValues(code).Observe(elapsed.Seconds())
	}
	s.logAccess(r, route, status, rec, elapsed)
}

// logAccess writes the access line. Probes are polled every few seconds by
// load balancers: they go at debug, so the info log holds what clients did.
func (s *Server) logAccess(r *http.Request, route string, status int, rec *recorder, elapsed time.Duration) {
	level := slog.LevelInfo
	if route == "healthz" || route == "readyz" {
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.cfg.Logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", truncate(r.URL.Path, 200)),
		slog.Int("status", status),
		slog.Int64("bytes", rec.written),
		slog.Duration("duration", elapsed),
		slog.String("remote", r.RemoteAddr),
	}
	if rec.invocations > 0 {
		attrs = append(attrs, slog.Int("invocations", rec.invocations), slog.String("outcomes", formatOutcomes(rec.outcomes)))
	}
	s.cfg.Logger.LogAttrs(ctx, level, "request", attrs...)
}

// routeName is the metrics label of a mux pattern: a few fixed names, so
// that no path a caller makes up becomes a series.
func routeName(pattern string) string {
	switch pattern {
	case "POST /{$}":
		return "invoke"
	case "GET /{$}":
		return "info"
	case "GET /receipt/{cid}":
		return "receipt"
	case "GET /.well-known/did.json":
		return "did"
	case "GET /healthz":
		return "healthz"
	case "GET /readyz":
		return "readyz"
	}
	return "other"
}

// answerUnrouted answers a request no route takes. The mux's own answers
// (404, or 405 with Allow) are text; the mux is asked for its answer into a
// buffer, and its status and Allow header are kept with a JSON body
// instead, as the README promises.
func (s *Server) answerUnrouted(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/receipt/" {
		writeError(w, http.StatusBadRequest, "InvalidCID", "the path must end in a CID: GET /receipt/{cid}")
		return
	}
	buf := &bufferedAnswer{header: http.Header{}}
	s.mux.ServeHTTP(buf, r)
	switch {
	case buf.status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", buf.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("%s is not served on %s; allowed: %s", r.Method, truncate(r.URL.Path, 200), buf.header.Get("Allow")))
	default:
		writeError(w, http.StatusNotFound, "NotFound",
			fmt.Sprintf("nothing is served at %s %s; GET / lists what is", r.Method, truncate(r.URL.Path, 200)))
	}
}

// bufferedAnswer takes what the mux would answer a request it cannot route.
type bufferedAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedAnswer) Header() http.Header { return b.header }
func (b *bufferedAnswer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedAnswer) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// recorder notes what a handler answered, for the metrics and the access
// log; handleInvoke adds the invocations and their outcomes (noteOutcomes).
type recorder struct {
	http.ResponseWriter
	status      int
	written     int64
	invocations int
	outcomes    map[string]int
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (handleInvoke
// sets read deadlines through it).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// noteOutcomes records a message's invocations and their outcomes for the
// access log of the request w answers.
func noteOutcomes(w http.ResponseWriter, invocations int, outcomes map[string]int) {
	if rec, ok := w.(*recorder); ok {
		rec.invocations, rec.outcomes = invocations, outcomes
	}
}

// formatOutcomes writes outcome counts as "ok=3 Unauthorized=1", sorted.
func formatOutcomes(outcomes map[string]int) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(outcomes)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", name, outcomes[name])
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
