package stripe_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/testenv"
	"github.com/egressd/egressd/server"
)

// TestRecordedEgressReachesStripeMock runs the whole path against
// stripe-mock, which checks every request against Stripe's OpenAPI spec:
// real usage/record and egress/record invocations to a real server, the
// queue, the worker, batches, meter events. It also takes a customer
// without an account through `customer set` and a redrive.
func TestRecordedEgressReachesStripeMock(t *testing.T) {
	stripeURL := testenv.URL(t, testenv.Stripe)
	testenv.Reachable(t, stripeURL)
	proxy := &recordingProxy{}
	proxySrv := httptest.NewServer(proxy.handler(t, stripeURL))
	defer proxySrv.Close()

	// A real server over the embedded stores.
	dir := t.TempDir()
	service := newSigner(t)
	data, err := embedded.Open(context.Background(), dir, embedded.Options{Poll: 10 * time.Millisecond})
	must(t, err)
	defer data.Close()
	customers, queue, ledger := data.Customers, data.Queue, data.Ledger
	srv, err := server.New(server.Config{Signer: service, Customers: customers, Queue: queue, Receipts: data.Receipts, Journal: data, Version: "test"})
	must(t, err)
	httpSrv := httptest.NewServer(srv)
	defer httpSrv.Close()

	ctx := context.Background()
	const alice, bob = "did:mailto:example.com:alice", "did:mailto:example.com:bob"
	aliceSpace, bobSpace, gateway := newSigner(t), newSigner(t), newSigner(t)
	must(t, customers.Provision(ctx, aliceSpace.DID().String(), alice, service.DID().String()))
	must(t, customers.Provision(ctx, bobSpace.DID().String(), bob, service.DID().String()))
	must(t, customers.SetAccount(ctx, alice, "stripe:cus_alice"))

	// The gateway records with both capability names; the space once itself.
	servedAt := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	dlg, err := client.Delegate(aliceSpace, gateway, []string{"space/content/serve/*", "usage/*"}, time.Time{})
	must(t, err)
	bobDlg, err := client.Delegate(bobSpace, gateway, []string{"usage/*"}, time.Time{})
	must(t, err)
	invs := []invocation.Invocation{
		invoke(t, gateway, service, client.Record{Can: capabilities.UsageRecord, Space: aliceSpace.DID(), Bytes: 1048576, ServedAt: servedAt}, dlg),
		invoke(t, gateway, service, client.Record{Can: capabilities.EgressRecord, Space: aliceSpace.DID(), Bytes: 2048, ServedAt: servedAt}, dlg),
		invoke(t, aliceSpace, service, client.Record{Can: capabilities.EgressRecord, Space: aliceSpace.DID(), Bytes: 7, ServedAt: servedAt}),
		invoke(t, gateway, service, client.Record{Can: capabilities.UsageRecord, Space: bobSpace.DID(), Bytes: 4096, ServedAt: servedAt}, bobDlg),
	}
	rcpts, err := client.New(httpSrv.URL).Execute(ctx, invs...)
	must(t, err)
	for i, r := range rcpts {
		if _, fail := result.Unwrap(r.Out()); fail != nil {
			name, msg := client.OutcomeFailure(r)
			t.Fatalf("invocation %d failed: %s: %s", i, name, msg)
		}
	}

	reporter, err := stripe.New(stripe.Config{Key: "sk_test_egressd", URL: proxySrv.URL, EventName: "egress"})
	must(t, err)
	runWorker(t, billing.WorkerConfig{Queue: queue, Ledger: ledger, Accounts: customers, Sink: reporter}, func() bool {
		n, _ := queue.Depth(ctx)
		return n == 0
	})

	// Alice's three events were served in one minute: the worker sums
	// them into as few meter events as it received them in (one, when
	// they arrive together), each under the cause of its batch's first
	// event, stamped with their servedAt; their values add up to hers.
	sent := proxy.byIdentifier()
	var aliceBytes int64
	for i, inv := range invs[:3] {
		ex, ok := sent[inv.Link().String()]
		if !ok {
			continue
		}
		if ex.status != http.StatusOK {
			t.Errorf("stripe-mock answered %d to the meter event of invocation %d: the request is not valid for Stripe", ex.status, i)
		}
		f := ex.form
		value, err := strconv.ParseInt(f.Get("payload[value]"), 10, 64)
		if err != nil || ex.path != "/v1/billing/meter_events" || ex.auth != "Bearer sk_test_egressd" || f.Get("event_name") != "egress" ||
			f.Get("payload[stripe_customer_id]") != "cus_alice" || f.Get("timestamp") != strconv.FormatInt(servedAt.Unix(), 10) {
			t.Errorf("meter event of invocation %d: %s %s %v", i, ex.path, ex.auth, f)
		}
		if want := stripe.IdempotencyKey(inv.Link().String(), "egress", "cus_alice", f.Get("payload[value]"), servedAt.Unix()); ex.idempotencyKey != want {
			t.Errorf("Idempotency-Key %q, want %q", ex.idempotencyKey, want)
		}
		aliceBytes += value
	}
	if aliceBytes != 1048576+2048+7 {
		t.Fatalf("Stripe was sent %d bytes for alice, want %d; sent %v", aliceBytes, 1048576+2048+7, sent)
	}
	bobCause := invs[3].Link().String()
	if _, ok := sent[bobCause]; ok {
		t.Fatal("a meter event was sent for bob, who has no account")
	}
	entries, err := ledger.Entries(ctx, billing.EntryFilter{Customer: bob})
	must(t, err)
	if len(entries) != 1 || entries[0].State != billing.Unbillable || entries[0].Reason != billing.ReasonNoAccount {
		t.Fatalf("bob's ledger entries: %+v", entries)
	}

	// `egressd customer set` and `egressd billing redrive`.
	must(t, customers.SetAccount(ctx, bob, "stripe:cus_bob"))
	w, err := billing.NewWorker(billing.WorkerConfig{Queue: queue, Ledger: ledger, Accounts: customers, Sink: reporter,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	res, err := w.Redrive(ctx, billing.RedriveFilter{Customer: bob})
	if err != nil || res.Settled[billing.Reported] != 1 {
		t.Fatalf("redrive = %+v, %v", res, err)
	}
	ex, ok := proxy.byIdentifier()[bobCause]
	if !ok || ex.status != http.StatusOK || ex.form.Get("payload[stripe_customer_id]") != "cus_bob" || ex.form.Get("payload[value]") != "4096" {
		t.Fatalf("bob's redriven meter event: %+v", ex)
	}
	counts, err := ledger.Count(ctx, billing.UsageFilter{Month: billing.Month(servedAt)})
	must(t, err)
	if counts[billing.Reported] != 4 || counts[billing.Pending]+counts[billing.Unbillable]+counts[billing.Failed] != 0 {
		t.Fatalf("ledger counts %v, want 4 reported", counts)
	}
}

// runWorker runs a worker until done holds (a minute at most).
func runWorker(t *testing.T, cfg billing.WorkerConfig, done func() bool) {
	t.Helper()
	cfg.Wait = 20 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Registry = prometheus.NewRegistry()
	w, err := billing.NewWorker(cfg)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	must(t, <-stopped)
	if !done() {
		t.Fatal("the worker did not finish within a minute")
	}
}

func invoke(t *testing.T, issuer, service principal.Signer, rec client.Record, proofs ...delegation.Delegation) invocation.Invocation {
	t.Helper()
	mh, err := multihash.Sum([]byte(t.Name()+strconv.FormatInt(rec.Bytes, 10)), multihash.SHA2_256, -1)
	must(t, err)
	rec.Resource = cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}
	inv, err := client.Invoke(issuer, service, rec, proofs...)
	must(t, err)
	return inv
}

func newSigner(t *testing.T) principal.Signer {
	t.Helper()
	s, err := signer.Generate()
	must(t, err)
	return s
}
