package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/embedded"
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
	j, err := embedded.Open(context.Background(), b.TempDir(), sqlite.QueueOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return j.Queue
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

// BenchmarkLedgerRecord is the worker's first write per event: the ledger
// insert and the monthly totals, in one transaction, from concurrent workers.
func BenchmarkLedgerRecord(b *testing.B) {
	l, err := sqlite.OpenLedger(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			ev := benchEvent(i)
			ev.Cause = fmt.Sprintf("%s-%p-%d", ev.Cause, pb, i)
			if _, _, err := l.Record(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
