package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/result"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

const alice = "did:mailto:example.com:alice"

func TestRecordSucceedsForGatewayAndSpace(t *testing.T) {
	h := newHarness(t, nil)
	gateway := newKey(t)
	servedAt := time.Now().Add(-time.Hour).Truncate(time.Second)

	cases := []struct {
		name  string
		can   string
		viaGW bool
		bytes int64
	}{
		{"egress record from a gateway", capabilities.EgressRecord, true, 1024},
		{"usage/record from a gateway", capabilities.UsageRecord, true, 2048},
		{"egress record from the space itself", capabilities.EgressRecord, false, 4096},
		{"usage/record from the space itself", capabilities.UsageRecord, false, 8192},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			space := h.provision(alice)
			var inv invocation.IssuedInvocation
			if tc.viaGW {
				dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*", "usage/*"}, time.Time{})
				inv = recordFrom(t, gateway, h.service.DID(), tc.can, space.DID(), tc.bytes, servedAt, dlg)
			} else {
				inv = recordFrom(t, space, h.service.DID(), tc.can, space.DID(), tc.bytes, servedAt)
			}
			before := h.depth()
			rcpt := h.ucantoExecute(inv)[0]

			ok := mustOK(t, rcpt)
			if got := stringField(t, ok, "space"); got != space.DID().String() {
				t.Errorf("space = %s, want %s", got, space.DID())
			}
			if got := intField(t, ok, "bytes"); got != tc.bytes {
				t.Errorf("bytes = %d, want %d", got, tc.bytes)
			}
			if got := stringField(t, ok, "servedAt"); got != servedAt.UTC().Format("2006-01-02T15:04:05.000Z") {
				t.Errorf("servedAt = %s, want %s", got, servedAt.UTC())
			}
			if got := linkField(t, ok, "cause"); got != inv.Link().String() {
				t.Errorf("cause = %s, want %s", got, inv.Link())
			}
			verified, err := client.Verify(rcpt, h.service.DID(), h.service.DID())
			if err != nil || !verified {
				t.Fatalf("receipt does not verify against the service DID: %v", err)
			}

			if h.depth() != before+1 {
				t.Fatalf("queue depth %d, want %d", h.depth(), before+1)
			}
			ev := lastEvent(t, h)
			want := billing.Event{Space: space.DID().String(), Customer: alice, Resource: resourceLink(t, space.DID().String()).String(),
				Bytes: tc.bytes, ServedAt: servedAt.UTC(), Cause: inv.Link().String()}
			if ev.Space != want.Space || ev.Customer != want.Customer || ev.Resource != want.Resource ||
				ev.Bytes != want.Bytes || !ev.ServedAt.Equal(want.ServedAt) || ev.Cause != want.Cause {
				t.Fatalf("queued event %+v, want %+v", ev, want)
			}
		})
	}
}

func TestHundredInvocationsGetHundredReceipts(t *testing.T) {
	h := newHarness(t, nil)
	gateway := newKey(t)
	var invs []invocation.Invocation
	for i := range 100 {
		space := h.provision(alice) // a different space for each invocation
		dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
		invs = append(invs, recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), int64(i+1), time.Now(), dlg))
	}
	rcpts, err := h.client.Execute(context.Background(), invs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcpts) != 100 {
		t.Fatalf("%d receipts, want 100", len(rcpts))
	}
	var total int64
	for i, r := range rcpts {
		if r.Ran().Link().String() != invs[i].Link().String() {
			t.Fatalf("receipt %d is for %s, want %s", i, r.Ran().Link(), invs[i].Link())
		}
		total += intField(t, mustOK(t, r), "bytes")
	}
	if total != 100*101/2 {
		t.Fatalf("receipts account for %d bytes, want %d", total, 100*101/2)
	}
	if h.depth() != 100 {
		t.Fatalf("queue depth %d, want 100", h.depth())
	}
}

func TestSameInvocationTwiceIsQueuedOnce(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	inv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 100, time.Now())

	first := h.ucantoExecute(inv)[0]
	second := h.ucantoExecute(inv)[0]
	mustOK(t, first)
	if first.Root().Link().String() != second.Root().Link().String() {
		t.Fatalf("second receipt %s differs from first %s", second.Root().Link(), first.Root().Link())
	}
	if h.depth() != 1 {
		t.Fatalf("queue depth %d after sending twice, want 1", h.depth())
	}
	// Sent twice in one message: still one event.
	if _, err := h.client.Execute(context.Background(), inv, inv); err != nil {
		t.Fatal(err)
	}
	if h.depth() != 1 {
		t.Fatalf("queue depth %d after a duplicate message, want 1", h.depth())
	}
}

func TestReceiptIsFetchableByInvocationAndReceiptCID(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	inv := recordFrom(t, space, h.service.DID(), capabilities.UsageRecord, space.DID(), 5, time.Now())
	rcpt := h.ucantoExecute(inv)[0]
	mustOK(t, rcpt)

	for _, id := range []string{inv.Link().String(), rcpt.Root().Link().String()} {
		got, err := h.client.Receipt(context.Background(), id)
		if err != nil {
			t.Fatalf("fetching receipt by %s: %v", id, err)
		}
		if got.Root().Link().String() != rcpt.Root().Link().String() {
			t.Fatalf("fetched receipt %s, want %s", got.Root().Link(), rcpt.Root().Link())
		}
		if ok, err := client.Verify(got, h.service.DID(), h.service.DID()); err != nil || !ok {
			t.Fatalf("fetched receipt does not verify: %v", err)
		}
	}
	unknown := resourceLink(t, "never recorded").String()
	_, err := h.client.Receipt(context.Background(), unknown)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 404 || se.Name != "ReceiptNotFound" {
		t.Fatalf("unknown receipt: got %v, want 404 ReceiptNotFound", err)
	}
}

// lastEvent reads the newest event on the queue without consuming it for good.
func lastEvent(t *testing.T, h *harness) billing.Event {
	t.Helper()
	msgs, err := h.queue.Receive(context.Background(), 1000, 0)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("receiving: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if err := h.queue.Extend(context.Background(), m, 0); err != nil {
			t.Fatal(err)
		}
	}
	return msgs[len(msgs)-1].Event
}

func mustOK(t *testing.T, rcpt receipt.AnyReceipt) ipld.Node {
	t.Helper()
	ok, fail := result.Unwrap(rcpt.Out())
	if fail != nil {
		name, msg := client.OutcomeFailure(rcpt)
		t.Fatalf("receipt is a failure: %s: %s", name, msg)
	}
	return ok
}

func mustFail(t *testing.T, rcpt receipt.AnyReceipt, name string) string {
	t.Helper()
	got, msg := client.OutcomeFailure(rcpt)
	if got != name {
		t.Fatalf("failure %q (%s), want %q", got, msg, name)
	}
	if strings.Contains(msg, ".go:") || strings.Contains(msg, "goroutine") || strings.Contains(msg, "0x") {
		t.Fatalf("failure message leaks Go internals: %s", msg)
	}
	return msg
}

func stringField(t *testing.T, n ipld.Node, key string) string {
	t.Helper()
	v, err := n.LookupByString(key)
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	s, err := v.AsString()
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	return s
}

func intField(t *testing.T, n ipld.Node, key string) int64 {
	t.Helper()
	v, err := n.LookupByString(key)
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	i, err := v.AsInt()
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	return i
}

func linkField(t *testing.T, n ipld.Node, key string) string {
	t.Helper()
	v, err := n.LookupByString(key)
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	l, err := v.AsLink()
	if err != nil {
		t.Fatalf("field %s: %v", key, err)
	}
	return l.String()
}
