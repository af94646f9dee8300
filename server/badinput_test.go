package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
)

func TestBadInvocationsGetNamedFailuresAndQueueNothing(t *testing.T) {
	h := newHarness(t, nil)
	gateway := newKey(t)
	space := h.provision(alice)
	other := h.provision(alice)
	unprovisioned := newKey(t)
	now := time.Now()
	good := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})

	cases := []struct {
		name    string
		inv     func() invocation.Invocation
		failure string
		// contains is a word the message must have, so callers learn the cause.
		contains string
	}{
		{"no proof", func() invocation.Invocation {
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now)
		}, "Unauthorized", "not authorized"},
		{"proof from another space", func() invocation.Invocation {
			foreign := delegate(t, other, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now, foreign)
		}, "Unauthorized", "not authorized"},
		{"proof for a capability that does not derive record", func() invocation.Invocation {
			unrelated := delegate(t, space, gateway.DID(), []string{"store/add"}, time.Time{})
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now, unrelated)
		}, "Unauthorized", "not authorized"},
		{"wrong audience", func() invocation.Invocation {
			return recordFrom(t, gateway, newKey(t).DID(), capabilities.EgressRecord, space.DID(), 10, now, good)
		}, "InvalidAudience", "addressed to"},
		{"expired delegation", func() invocation.Invocation {
			expired := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, now.Add(-time.Minute))
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now, expired)
		}, "Unauthorized", "expired"},
		{"expired invocation", func() invocation.Invocation {
			inv, err := capabilities.EgressRecordCapability.Invoke(gateway, h.service, space.DID().String(),
				capabilities.RecordCaveats{Resource: resourceLink(t, "x"), Bytes: 10, ServedAt: now.UnixMilli()},
				delegation.WithProof(delegation.FromDelegation(good)), delegation.WithExpiration(int(now.Add(-time.Minute).Unix())))
			if err != nil {
				t.Fatal(err)
			}
			return inv
		}, "Unauthorized", "expired"},
		{"not valid yet", func() invocation.Invocation {
			inv, err := capabilities.EgressRecordCapability.Invoke(gateway, h.service, space.DID().String(),
				capabilities.RecordCaveats{Resource: resourceLink(t, "x"), Bytes: 10, ServedAt: now.UnixMilli()},
				delegation.WithProof(delegation.FromDelegation(good)), delegation.WithNotBefore(int(now.Add(time.Hour).Unix())))
			if err != nil {
				t.Fatal(err)
			}
			return inv
		}, "Unauthorized", "not valid before"},
		{"bytes 0", func() invocation.Invocation {
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 0, now, good)
		}, "MalformedCapability", "bytes"},
		{"bytes negative", func() invocation.Invocation {
			return recordFrom(t, gateway, h.service.DID(), capabilities.UsageRecord, space.DID(), -5, now, good)
		}, "MalformedCapability", "bytes"},
		{"servedAt in the future", func() invocation.Invocation {
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now.Add(10*time.Minute), good)
		}, capabilities.ServedAtOutOfRangeName, "servedAt"},
		{"servedAt too old", func() invocation.Invocation {
			return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, now.Add(-36*24*time.Hour), good)
		}, capabilities.ServedAtOutOfRangeName, "servedAt"},
		{"unknown space", func() invocation.Invocation {
			return recordFrom(t, unprovisioned, h.service.DID(), capabilities.EgressRecord, unprovisioned.DID(), 10, now)
		}, capabilities.ConsumerNotFoundName, "not provisioned"},
		{"unknown capability", func() invocation.Invocation {
			inv, err := invocation.Invoke(space, h.service, newCapability("store/add", space.DID().String()))
			if err != nil {
				t.Fatal(err)
			}
			return inv
		}, "HandlerNotFound", "does not provide"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := tc.inv()
			rcpt := h.ucantoExecute(inv)[0]
			msg := mustFail(t, rcpt, tc.failure)
			if !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.contains)) {
				t.Errorf("message %q does not mention %q", msg, tc.contains)
			}
			if ok, err := client.Verify(rcpt, h.service.DID(), h.service.DID()); err != nil || !ok {
				t.Errorf("failure receipt does not verify: %v", err)
			}
			if d := h.depth(); d != 0 {
				t.Fatalf("a refused invocation queued %d events", d)
			}
			if _, err := h.client.Receipt(context.Background(), inv.Link().String()); err == nil {
				t.Fatalf("a refused invocation's receipt was stored")
			}
		})
	}
}

func TestPartlyBadMessageRecordsTheGoodOnes(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	goodInv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now())
	badInv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 0, time.Now())
	rcpts, err := h.client.Execute(context.Background(), goodInv, badInv)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rcpts[0])
	mustFail(t, rcpts[1], "MalformedCapability")
	if h.depth() != 1 {
		t.Fatalf("queue depth %d, want 1", h.depth())
	}
}

func TestBadRequestsGetHTTPStatusAndQueueNothing(t *testing.T) {
	h := newHarness(t, func(c *server.Config) {
		c.MaxBodyBytes = 64 << 10
		c.MaxInvocations = 3
	})
	space := h.provision(alice)
	validBody := func(n int) []byte {
		var invs []invocation.Invocation
		for range n {
			invs = append(invs, recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now()))
		}
		b, err := client.EncodeMessage(invs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		errName     string
	}{
		{"wrong content type", "application/json", []byte(`{"hello":"world"}`), http.StatusUnsupportedMediaType, "UnsupportedMediaType"},
		{"no content type", "", validBody(1), http.StatusUnsupportedMediaType, "UnsupportedMediaType"},
		{"malformed CAR", "application/vnd.ipld.car", []byte("this is not a CAR file"), http.StatusBadRequest, "MalformedMessage"},
		{"truncated CAR", "application/vnd.ipld.car", validBody(1)[:200], http.StatusBadRequest, "MalformedMessage"},
		{"empty body", "application/vnd.ipld.car", nil, http.StatusBadRequest, "MalformedMessage"},
		{"oversized body", "application/vnd.ipld.car", bytes.Repeat([]byte{0xa1}, 65<<10), http.StatusRequestEntityTooLarge, "PayloadTooLarge"},
		{"too many invocations", "application/vnd.ipld.car", validBody(4), http.StatusRequestEntityTooLarge, "TooManyInvocations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/", bytes.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", res.StatusCode, body, tc.status)
			}
			if !strings.Contains(string(body), `"name": "`+tc.errName+`"`) {
				t.Fatalf("body %s does not name %s", body, tc.errName)
			}
			if strings.Contains(string(body), ".go:") || strings.Contains(string(body), "goroutine") {
				t.Fatalf("body leaks Go internals: %s", body)
			}
			if d := h.depth(); d != 0 {
				t.Fatalf("a refused request queued %d events", d)
			}
		})
	}
	// And the limit itself is fine.
	if _, err := h.client.ExecuteRaw(context.Background(), validBody(3)); err != nil {
		t.Fatalf("a message at the invocation limit was refused: %v", err)
	}
	var se *client.StatusError
	if _, err := h.client.ExecuteRaw(context.Background(), validBody(4)); !errors.As(err, &se) || se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("client did not surface 413: %v", err)
	}
}
