package server_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	ucclient "github.com/storacha/go-ucanto/client"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	uhttp "github.com/storacha/go-ucanto/transport/http"
	"github.com/storacha/go-ucanto/ucan"

	billingsqlite "github.com/egressd/egressd/billing/sqlite"
	"github.com/egressd/egressd/client"
	customersqlite "github.com/egressd/egressd/customers/sqlite"
	"github.com/egressd/egressd/embedded"
	receiptsqlite "github.com/egressd/egressd/receipts/sqlite"
	"github.com/egressd/egressd/server"
)

// harness is a real egressd server on 127.0.0.1 over the embedded stores.
type harness struct {
	t         testing.TB
	service   principal.Signer
	customers *customersqlite.Store
	queue     *billingsqlite.Queue
	receipts  *receiptsqlite.Store
	http      *httptest.Server
	client    *client.Client
	// metrics serves the server's MetricsHandler, as serve --metrics-listen does.
	metrics *httptest.Server
	// journal is the embedded data directory, which records events and
	// receipts together.
	journal *embedded.DB
}

// newHarness starts a server; edit tweaks the config before it is built.
func newHarness(t testing.TB, edit func(*server.Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, service: newKey(t)}
	// The stores as the embedded backend opens them: the queue and the
	// receipts in one file, recorded together.
	journal, err := embedded.Open(context.Background(), dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.customers, h.queue, h.receipts, h.journal = journal.Customers, journal.Queue, journal.Receipts, journal
	cfg := server.Config{
		Signer:    h.service,
		Customers: h.customers,
		Queue:     h.queue,
		Receipts:  h.receipts,
		Journal:   journal,
		Version:   "test",
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(srv)
	h.metrics = httptest.NewServer(srv.MetricsHandler())
	h.client = client.New(h.http.URL)
	t.Cleanup(func() {
		h.http.Close()
		h.metrics.Close()
		journal.Close()
	})
	return h
}

// provision makes a new space paid for by customer and returns its key.
func (h *harness) provision(customer string) principal.Signer {
	h.t.Helper()
	space := newKey(h.t)
	if err := h.customers.Provision(context.Background(), space.DID().String(), customer, h.service.DID().String()); err != nil {
		h.t.Fatal(err)
	}
	return space
}

// depth is the number of events on the queue.
func (h *harness) depth() int {
	h.t.Helper()
	n, err := h.queue.Depth(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// ucantoExecute sends invocations with go-ucanto's own client, the way a Go
// gateway would, and returns the receipt of each.
func (h *harness) ucantoExecute(invs ...invocation.Invocation) []receipt.AnyReceipt {
	h.t.Helper()
	u, _ := url.Parse(h.http.URL)
	conn, err := ucclient.NewConnection(h.service, uhttp.NewChannel(u))
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := ucclient.Execute(context.Background(), invs, conn)
	if err != nil {
		h.t.Fatalf("executing: %v", err)
	}
	reader := receipt.NewAnyReceiptReader()
	out := make([]receipt.AnyReceipt, len(invs))
	for i, inv := range invs {
		link, ok := res.Get(inv.Link())
		if !ok {
			h.t.Fatalf("no receipt for invocation %d", i)
		}
		if out[i], err = reader.Read(link, res.Blocks()); err != nil {
			h.t.Fatalf("reading receipt %d: %v", i, err)
		}
	}
	return out
}

func newKey(t testing.TB) principal.Signer {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// delegate has space grant gateway the abilities, with options (expiry...).
func delegate(t testing.TB, space principal.Signer, gateway did.DID, abilities []string, exp time.Time) delegation.Delegation {
	t.Helper()
	dlg, err := client.Delegate(space, gateway, abilities, exp)
	if err != nil {
		t.Fatal(err)
	}
	return dlg
}

// resourceLink returns a raw-leaf CID for s.
func resourceLink(t testing.TB, s string) ipld.Link {
	t.Helper()
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}
}

// recordFrom signs a record invocation of can for space from issuer.
func recordFrom(t testing.TB, issuer principal.Signer, audience did.DID, can string, space did.DID, bytes int64, servedAt time.Time, proofs ...delegation.Delegation) invocation.IssuedInvocation {
	t.Helper()
	inv, err := client.Invoke(issuer, audience, client.Record{
		Can: can, Space: space, Resource: resourceLink(t, space.String()), Bytes: bytes, ServedAt: servedAt,
	}, proofs...)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// newCapability builds a capability with no caveats, for invoking things
// egressd does not serve.
func newCapability(can, with string) ucan.Capability[ucan.CaveatBuilder] {
	return ucan.NewCapability[ucan.CaveatBuilder](can, with, ucan.NoCaveats{})
}
