package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/signer"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
)

func wrap(t testing.TB, key principal.Signer, id string) principal.Signer {
	t.Helper()
	d, err := did.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := signer.Wrap(key, d)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestGatewayWithMappedDIDWeb(t *testing.T) {
	gatewayKey := newKey(t)
	gateway := wrap(t, gatewayKey, "did:web:gw.example")
	h := newHarness(t, func(c *server.Config) {
		c.Principals = server.NewPrincipalResolver(map[did.DID]did.DID{gateway.DID(): gatewayKey.DID()}, nil)
	})
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	rcpt := h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg))[0]
	mustOK(t, rcpt)

	// An unmapped did:web cannot prove who signed.
	stranger := wrap(t, newKey(t), "did:web:stranger.example")
	dlg2 := delegate(t, space, stranger.DID(), []string{"space/content/serve/*"}, time.Time{})
	rcpt = h.ucantoExecute(recordFrom(t, stranger, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg2))[0]
	mustFail(t, rcpt, "Unauthorized")
	if h.depth() != 1 {
		t.Fatalf("queue depth %d, want 1", h.depth())
	}
}

func TestGatewayDIDWebResolvedFromItsDocument(t *testing.T) {
	gatewayKey := newKey(t)
	var docServer *httptest.Server
	fetches := 0
	docServer = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		host := strings.ReplaceAll(strings.TrimPrefix(docServer.URL, "https://"), ":", "%3A")
		json.NewEncoder(w).Encode(server.NewDIDDocument(mustDID(t, "did:web:"+host), gatewayKey.DID()))
	}))
	defer docServer.Close()
	host := strings.TrimPrefix(docServer.URL, "https://")
	gateway := wrap(t, gatewayKey, "did:web:"+strings.ReplaceAll(host, ":", "%3A"))
	h := newHarness(t, func(c *server.Config) {
		c.Principals = server.NewPrincipalResolver(nil, &server.DIDWebFetcher{Client: docServer.Client(), TTL: time.Hour, AllowedHosts: []string{host}})
	})
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	for range 3 {
		rcpt := h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg))[0]
		mustOK(t, rcpt)
	}
	if fetches != 1 {
		t.Fatalf("DID document fetched %d times for 3 invocations, want 1 (cached)", fetches)
	}
}

// A did:web is resolved only for hosts the operator allows, and a failed
// resolution is remembered: an invocation cannot make the service connect
// wherever it names, nor once per proof.
func TestDIDWebResolutionOnlyForAllowedHostsAndFailuresCached(t *testing.T) {
	var fetches atomic.Int32
	docServer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.NotFound(w, r)
	}))
	defer docServer.Close()
	host := strings.TrimPrefix(docServer.URL, "https://")
	h := newHarness(t, func(c *server.Config) {
		c.Principals = server.NewPrincipalResolver(nil, &server.DIDWebFetcher{
			Client: docServer.Client(), TTL: time.Hour, AllowedHosts: []string{"gw.example"},
			DocumentURL: func(string) string { return docServer.URL + "/.well-known/did.json" },
		})
	})
	space := h.provision(alice)
	for _, name := range []string{"did:web:" + strings.ReplaceAll(host, ":", "%3A"), "did:web:attacker.example", "did:web:gw.example"} {
		gateway := wrap(t, newKey(t), name)
		dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
		for range 3 {
			rcpt := h.ucantoExecute(recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg))[0]
			mustFail(t, rcpt, "Unauthorized")
		}
	}
	// Only gw.example is allowed, and its failure is fetched once, not three times.
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (allowed host only, failure cached)", n)
	}
}

func TestServiceDIDWebAndAlias(t *testing.T) {
	serviceKey := newKey(t)
	service := wrap(t, serviceKey, "did:web:egress.example")
	alias, _ := did.Parse("did:web:old-egress.example")
	h := newHarness(t, func(c *server.Config) {
		c.Signer = service
		c.Aliases = []did.DID{alias}
	})
	h.service = service

	// The document publishes the key behind the did:web.
	res, err := http.Get(h.http.URL + "/.well-known/did.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc server.DIDDocument
	json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	if doc.ID != "did:web:egress.example" || len(doc.VerificationMethod) != 1 ||
		"did:key:"+doc.VerificationMethod[0].PublicKeyMultibase != serviceKey.DID().String() {
		t.Fatalf("did.json = %+v", doc)
	}

	space := h.provision(alice)
	// A space provisioned under the alias is billed too.
	aliasSpace := newKey(t)
	if err := h.customers.Provision(context.Background(), aliasSpace.DID().String(), "did:mailto:example.com:bob", alias.String()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		space    principal.Signer
		audience did.DID
	}{{space, service.DID()}, {space, alias}, {aliasSpace, alias}, {aliasSpace, service.DID()}} {
		rcpt := h.ucantoExecute(recordFrom(t, tc.space, tc.audience, capabilities.EgressRecord, tc.space.DID(), 10, time.Now()))[0]
		mustOK(t, rcpt)
		key, err := h.client.ServiceKey(context.Background(), service.DID())
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := client.Verify(rcpt, service.DID(), key); err != nil || !ok {
			t.Fatalf("receipt does not verify against did:web via did.json: %v", err)
		}
	}
	if h.depth() != 4 {
		t.Fatalf("queue depth %d, want 4", h.depth())
	}

	info, err := h.client.Info(context.Background())
	if err != nil || info.DID != "did:web:egress.example" || len(info.Capabilities) != 2 {
		t.Fatalf("GET / = %+v, %v", info, err)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	mustOK(t, h.ucantoExecute(recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now()))[0])
	mustFail(t, h.ucantoExecute(recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 0, time.Now()))[0], "MalformedCapability")

	res, err := http.Get(h.http.URL + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	// Metrics are not public: the main listener does not serve them.
	res, err = http.Get(h.http.URL + "/metrics")
	if err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public listener: %v %v, want 404", res, err)
	}
	res, err = http.Get(h.metrics.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, res.Body); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`egressd_invocations_total{capability="space/content/serve/egress/record",outcome="ok"} 1`,
		`egressd_invocations_total{capability="space/content/serve/egress/record",outcome="MalformedCapability"} 1`,
		`egressd_queue_depth 1`,
		`egressd_request_duration_seconds_count{status="200"} 2`,
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func mustDID(t *testing.T, s string) did.DID {
	t.Helper()
	d, err := did.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
