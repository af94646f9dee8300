package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/egressd/egressd/server"
)

// FuzzInvoke throws arbitrary bodies at POST /: the server must answer every
// one with a ucanto reply or a named HTTP error, never panic or hang, and
// never leak Go internals. The committed corpus in testdata/fuzz/FuzzInvoke
// (valid messages, truncations, bit flips) runs with every `go test`.
func FuzzInvoke(f *testing.F) {
	h := newHarness(f, func(c *server.Config) { c.MaxBodyBytes = 1 << 20 })
	handler := h.http.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.ipld.car")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if out := rec.Body.String(); strings.Contains(out, "goroutine ") || strings.Contains(out, ".go:") {
			t.Fatalf("reply leaks Go internals: %q", out)
		}
	})
}
