package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/invocation"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// benchmarkRecord measures the handler path (decode, validate, look up the
// customer, sign, enqueue, store the receipt, encode the reply) for messages
// of batch invocations, each from a gateway holding a space delegation.
func benchmarkRecord(b *testing.B, batch int) {
	h := newHarness(b, nil)
	gateway := newKey(b)
	space := h.provision(alice)
	dlg := delegate(b, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	bodies := make([][]byte, b.N)
	for i := range b.N {
		invs := make([]invocation.Invocation, batch)
		for j := range invs {
			invs[j] = recordFrom(b, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), int64(1+i*batch+j), time.Now(), dlg)
		}
		body, err := client.EncodeMessage(invs)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	handler := h.http.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bodies[i]))
		req.Header.Set("Content-Type", "application/vnd.ipld.car")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "invocations/s")
}

func BenchmarkRecord1(b *testing.B)   { benchmarkRecord(b, 1) }
func BenchmarkRecord100(b *testing.B) { benchmarkRecord(b, 100) }
