package main_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/internal/awstest"
)

// TestTwoWorkersNeverCallStripeForOneCustomerAtOnce: two worker sidecars on
// SQS and DynamoDB bill one busy customer, with Stripe answering in 100 ms
// (a normal live latency) and answering 429 to a second concurrent call
// for a customer, as Stripe does. The workers take turns through a lock in
// the ledger table: never two calls in flight, no 429, every event billed
// once.
func TestTwoWorkersNeverCallStripeForOneCustomerAtOnce(t *testing.T) {
	ctx := context.Background()
	env := awsEnv(t)
	prefix := awstest.Name("lock")
	backend := []string{"--receipts", "s3://" + prefix + "/receipts", "--queue", "sqs://" + prefix, "--tables", "dynamodb://" + prefix + "-"}
	runEnv(t, env, append([]string{"aws", "init"}, backend...)...)
	serviceDID, serviceKey := generateKey(t)
	service, _ := did.Parse(serviceDID)
	customer := "did:mailto:example.com:busy"
	runEnv(t, env, append([]string{"customer", "set", "--customer", customer, "--stripe-customer", "cus_busy"}, backend...)...)
	space, _ := signer.Generate()
	runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--space", space.DID().String(), "--customer", customer}, backend...)...)

	stripe := stripetest.New(t)
	stripe.AddMeter("egress")
	stripe.SetDelay(100 * time.Millisecond)
	srv := startServeEnv(t, env, t.TempDir(), append([]string{"--worker=false", "--key", serviceKey}, backend...)...)
	const events = 30
	var invs []invocation.Invocation
	for i := range events {
		mh, _ := multihash.Sum(fmt.Appendf(nil, "busy/%d", i), multihash.SHA2_256, -1)
		inv, err := client.Invoke(space, service, client.Record{
			Space: space.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 1000,
			// One event a minute: each is its own batch, a call of its own.
			ServedAt: time.Now().Add(-time.Duration(i) * time.Minute),
		})
		if err != nil {
			t.Fatal(err)
		}
		invs = append(invs, inv)
	}
	if _, err := client.New(srv.URL).Execute(ctx, invs...); err != nil {
		t.Fatal(err)
	}
	workerEnv := append(env, "STRIPE_SECRET_KEY="+stripetest.Key)
	workerArgs := append([]string{"--data-dir", t.TempDir(), "--stripe-url", stripe.URL, "--stripe-rate", "1000", "--worker-wait", "1s", "--worker-batch", "5"}, backend...)
	startWorker(t, workerEnv, workerArgs...)
	startWorker(t, workerEnv, workerArgs...)

	deadline := time.Now().Add(90 * time.Second)
	for stripe.Totals()["cus_busy"] < events*1000 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if got := len(stripe.Events()); got != events {
		t.Fatalf("Stripe has %d meter events, want one per minute's batch, %d", got, events)
	}
	if n := stripe.MaxInFlightPerCustomer(); n != 1 {
		t.Errorf("at most %d Stripe calls in flight for one customer, want 1", n)
	}
	if limited := stripe.RateLimited(); len(limited) > 0 {
		t.Errorf("Stripe answered 429 %d times: %+v", len(limited), limited[0])
	}
	if total := stripe.Totals()["cus_busy"]; total != events*1000 {
		t.Errorf("cus_busy billed %d bytes, want %d", total, events*1000)
	}
}
