// Package queuetest is the conformance suite every billing.Queue passes: the
// embedded queue and the SQS queue run the same tests.
package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// Open returns an empty queue whose received messages stay leased for
// visibility (whole seconds: SQS counts no finer). It is called once per
// subtest and owns the queue's cleanup (t.Cleanup).
type Open func(t *testing.T, visibility time.Duration) billing.Queue

// Long is the lease of tests that must not see a message come back.
const Long = time.Hour

// Short is the lease of tests that wait for a message to come back.
const Short = time.Second

// wait bounds each Receive that expects a message; no assertion depends on
// how long anything takes.
const wait = 5 * time.Second

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name       string
		visibility time.Duration
		run        func(t *testing.T, q billing.Queue)
	}{
		{"an empty queue receives nothing", Long, testEmpty},
		{"an event goes through intact", Long, testRoundTrip},
		{"more than ten events in one Enqueue", Long, testMany},
		{"Receive returns at most max", Long, testMax},
		{"concurrent Enqueue calls", Long, testConcurrent},
		{"an unacknowledged message comes back", Short, testRedelivery},
		{"Extend keeps a message leased, and a zero extension releases it", Short, testExtend},
		{"Depth counts waiting and leased messages", Long, testDepth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t, tc.visibility)) })
	}
}

func testEmpty(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	if err := q.Enqueue(ctx); err != nil {
		t.Fatalf("Enqueue() = %v, want nil", err)
	}
	msgs, err := q.Receive(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Receive on an empty queue = %d messages, want none", len(msgs))
	}
	depthIs(t, q, 0)
}

func testRoundTrip(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	ev := Event(0)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	msgs := receiveN(t, q, 1)
	if msgs[0].ID == "" {
		t.Error("the message has no ID")
	}
	if msgs[0].Receives != 1 {
		t.Errorf("Receives = %d, want 1", msgs[0].Receives)
	}
	same(t, msgs[0].Event, ev)
	ack(t, q, msgs...)
	depthIs(t, q, 0)
	if msgs, err := q.Receive(ctx, 10, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive after Ack = %d messages, %v; want none", len(msgs), err)
	}
}

func testMany(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	events := make([]billing.Event, 25)
	for i := range events {
		events[i] = Event(i)
	}
	if err := q.Enqueue(ctx, events...); err != nil {
		t.Fatal(err)
	}
	msgs := receiveN(t, q, len(events))
	sameSet(t, msgs, events)
	depthIs(t, q, len(events)) // leased messages still count
	ack(t, q, msgs...)
	depthIs(t, q, 0)
}

func testMax(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	events := []billing.Event{Event(0), Event(1), Event(2), Event(3), Event(4)}
	if err := q.Enqueue(ctx, events...); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 2, wait)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 || len(msgs) > 2 {
		t.Fatalf("Receive(max 2) = %d messages, want 1 or 2", len(msgs))
	}
	rest := receiveN(t, q, len(events)-len(msgs))
	sameSet(t, append(msgs, rest...), events)
}

func testConcurrent(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	const callers, each = 20, 3
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		events []billing.Event
		errs   []error
	)
	start := make(chan struct{})
	for c := range callers {
		batch := make([]billing.Event, each)
		for i := range batch {
			batch[i] = Event(c*each + i)
		}
		events = append(events, batch...)
		wg.Go(func() {
			<-start
			if err := q.Enqueue(ctx, batch...); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("concurrent Enqueue: %v", err)
	}
	msgs := receiveN(t, q, len(events))
	sameSet(t, msgs, events)
	ack(t, q, msgs...)
}

func testRedelivery(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	ev := Event(0)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	first := receiveN(t, q, 1)[0]
	// Not acknowledged: once the lease runs out it is handed out again.
	again := receiveN(t, q, 1)[0]
	same(t, again.Event, ev)
	if again.Receives != first.Receives+1 {
		t.Errorf("Receives = %d on redelivery, want %d", again.Receives, first.Receives+1)
	}
	ack(t, q, again)
	depthIs(t, q, 0)
}

func testExtend(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	ev := Event(0)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	msg := receiveN(t, q, 1)[0]
	if err := q.Extend(ctx, msg, Long); err != nil {
		t.Fatal(err)
	}
	// Well past the original one-second lease, the message stays leased.
	if msgs, err := q.Receive(ctx, 10, 3*Short); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive after Extend = %d messages, %v; want none (still leased)", len(msgs), err)
	}
	if err := q.Extend(ctx, msg, 0); err != nil {
		t.Fatal(err)
	}
	back := receiveN(t, q, 1)[0]
	same(t, back.Event, ev)
	ack(t, q, back)
}

func testDepth(t *testing.T, q billing.Queue) {
	ctx := context.Background()
	if err := q.Enqueue(ctx, Event(0), Event(1), Event(2)); err != nil {
		t.Fatal(err)
	}
	depthIs(t, q, 3)
	msgs, err := q.Receive(ctx, 1, wait)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive(max 1) = %d messages, %v; want 1", len(msgs), err)
	}
	depthIs(t, q, 3)
	ack(t, q, msgs...)
	depthIs(t, q, 2)
}

// Event returns a distinct, realistic event.
func Event(i int) billing.Event {
	b := make([]byte, 8)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	return billing.Event{
		Space:    "did:key:z6MkSpace" + tag,
		Customer: "did:mailto:example.com:" + tag,
		Resource: "bafkreiresource" + tag,
		Bytes:    int64(1024 + i),
		ServedAt: time.Date(2026, 1, 2, 3, 4, 5, 6_000_000*(i%100), time.UTC),
		Cause:    fmt.Sprintf("bafyreicause%s%03d", tag, i),
	}
}

// receiveN receives until it has n messages, failing if a Receive that
// waits comes back empty first.
func receiveN(t *testing.T, q billing.Queue, n int) []billing.Message {
	t.Helper()
	var msgs []billing.Message
	for len(msgs) < n {
		got, err := q.Receive(context.Background(), n-len(msgs), wait)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(got) == 0 {
			t.Fatalf("received %d of %d messages, then none within %s", len(msgs), n, wait)
		}
		msgs = append(msgs, got...)
	}
	if len(msgs) > n {
		t.Fatalf("received %d messages, want %d", len(msgs), n)
	}
	return msgs
}

func ack(t *testing.T, q billing.Queue, msgs ...billing.Message) {
	t.Helper()
	if err := q.Ack(context.Background(), msgs...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// depthIs checks Depth, polling briefly because SQS's counts are approximate
// and catch up shortly after a change.
func depthIs(t *testing.T, q billing.Queue, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, err := q.Depth(context.Background())
		if err != nil {
			t.Fatalf("Depth: %v", err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Depth = %d, want %d", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func same(t *testing.T, got, want billing.Event) {
	t.Helper()
	if got.Space != want.Space || got.Customer != want.Customer || got.Resource != want.Resource ||
		got.Bytes != want.Bytes || !got.ServedAt.Equal(want.ServedAt) || got.Cause != want.Cause {
		t.Fatalf("event = %+v, want %+v", got, want)
	}
}

// sameSet checks that msgs carry exactly events, each once.
func sameSet(t *testing.T, msgs []billing.Message, events []billing.Event) {
	t.Helper()
	want := make(map[string]billing.Event, len(events))
	for _, ev := range events {
		want[ev.Cause] = ev
	}
	seen := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		ev, ok := want[m.Event.Cause]
		if !ok {
			t.Fatalf("received an event that was not sent: %+v", m.Event)
		}
		if seen[m.Event.Cause] {
			t.Fatalf("received %s twice", m.Event.Cause)
		}
		seen[m.Event.Cause] = true
		same(t, m.Event, ev)
	}
	if len(seen) != len(want) {
		t.Fatalf("received %d distinct events, want %d", len(seen), len(want))
	}
}
