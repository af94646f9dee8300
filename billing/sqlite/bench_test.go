package sqlite_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
)

func benchEvent(i int) billing.Event {
	return billing.Event{
		Space: "did:key:z6Mkbench", Customer: fmt.Sprintf("did:mailto:bench.example:c%d", i%64),
		Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
		Bytes:    1000, ServedAt: time.Now(), Cause: fmt.Sprintf("bafybench%d", i),
	}
}

// openQueue opens the queue as the embedded backend does, in its journal.
func openQueue(b *testing.B) *sqlite.Queue {
	b.Helper()
	return openData(b, b.TempDir()).Queue
}

// BenchmarkEnqueueConcurrent is the server's load on the queue: many
// requests each enqueueing one event, durably, at the same time.
func BenchmarkEnqueueConcurrent(b *testing.B) {
	q := openQueue(b)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := q.Enqueue(context.Background(), benchEvent(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReceiveAck is the worker's load on the queue: receive a batch of
// ten, acknowledge it.
func BenchmarkReceiveAck(b *testing.B) {
	q := openQueue(b)
	ctx := context.Background()
	for start := 0; start < b.N; start += 500 {
		var evs []billing.Event
		for i := start; i < min(start+500, b.N); i++ {
			evs = append(evs, benchEvent(i))
		}
		if err := q.Enqueue(ctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for got := 0; got < b.N; {
		msgs, err := q.Receive(ctx, 10, 0)
		if err != nil || len(msgs) == 0 {
			b.Fatalf("receive: %d messages, %v", len(msgs), err)
		}
		if err := q.Ack(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		got += len(msgs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLedgerRecord is the worker's first write: Record of a thousand
// events a call (one fsync), from 1,000 customers or from one hot one, each
// event its own batch or a customer's events of a minute in one. settle adds
// the worker's last write: one Settle of the batches made, as the worker
// settles a round's batches. ns/op is per event.
//
// Causes are random, as CIDs are, so index inserts land on random pages as
// they do in production; causes=sequential is the easy case the benchmark
// measured before batches, for comparison with figures of that time.
func BenchmarkLedgerRecord(b *testing.B) {
	for _, random := range []bool{true, false} {
		for _, customers := range []int{1000, 1} {
			for _, window := range []time.Duration{0, time.Minute} {
				for _, settle := range []bool{false, true} {
					if !random && (customers != 1000 || window != 0) {
						continue
					}
					causes := map[bool]string{true: "random", false: "sequential"}[random]
					name := fmt.Sprintf("causes=%s/customers=%d/window=%v/settle=%v", causes, customers, window, settle)
					b.Run(name, func(b *testing.B) { benchRecord(b, random, customers, window, settle) })
				}
			}
		}
	}
}

// benchCause is the cause of the ith event: spread over the key space as
// CIDs are when random, in key order when not.
func benchCause(i int, random bool) string {
	if !random {
		return fmt.Sprintf("bafybench%010d", i)
	}
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	return "bafyrei" + hex.EncodeToString(h[:26])
}

func benchRecord(b *testing.B, random bool, customers int, window time.Duration, settle bool) {
	l := openData(b, b.TempDir()).Ledger
	ctx := context.Background()
	rule := billing.BatchRule{Window: window}
	// A millisecond apart, the way a busy server stamps them.
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	const perCall = 1000
	evs := make([]billing.Event, 0, perCall)
	batches := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		evs = evs[:0]
		for i := done; i < min(done+perCall, b.N); i++ {
			evs = append(evs, billing.Event{
				Space: "did:key:z6Mkbench", Customer: fmt.Sprintf("did:mailto:bench.example:c%d", i%customers),
				Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
				Bytes:    1000, ServedAt: start.Add(time.Duration(i) * time.Millisecond), Cause: benchCause(i, random),
			})
		}
		_, bs, err := l.Record(ctx, evs, rule)
		if err != nil {
			b.Fatal(err)
		}
		batches += len(bs)
		if settle {
			ss := make([]billing.Settlement, len(bs))
			for i, batch := range bs {
				ss[i] = billing.Settlement{Batch: batch, State: billing.Reported}
			}
			if err := l.Settle(ctx, ss...); err != nil {
				b.Fatal(err)
			}
		}
		done += len(evs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(batches), "events/batch")
}
