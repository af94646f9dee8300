package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
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
	cpu := processCPU()
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
	// CPU per invocation moves far less than the rate on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N*batch), "cpu-µs/invocation")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkRecord1(b *testing.B)   { benchmarkRecord(b, 1) }
func BenchmarkRecord100(b *testing.B) { benchmarkRecord(b, 100) }

// BenchmarkRecordHTTP8 is the load of `egressd bench --concurrency 8 --batch 1`:
// eight clients, one invocation per request, over loopback HTTP.
func BenchmarkRecordHTTP8(b *testing.B) {
	h := newHarness(b, nil)
	gateway := newKey(b)
	space := h.provision(alice)
	dlg := delegate(b, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	bodies := make(chan []byte, b.N)
	for i := range b.N {
		inv := recordFrom(b, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), int64(1+i), time.Now(), dlg)
		body, err := client.EncodeMessage([]invocation.Invocation{inv})
		if err != nil {
			b.Fatal(err)
		}
		bodies <- body
	}
	close(bodies)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range bodies {
				if _, err := h.client.ExecuteRaw(context.Background(), body); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "invocations/s")
}
