package main_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
)

// TestOnStorachasTables runs egressd on Storacha's six tables created exactly
// as w3infra's stack creates them, holding a space Storacha provisioned:
// aws init, provision, customer set, serve, worker, usage, billing list and
// billing redrive, all with --storacha. Afterwards no schema of Storacha's has changed, every
// row in Storacha's tables passes the rules Storacha's decoders apply (and
// holds nothing Storacha does not write), and the space Storacha provisioned
// still belongs to its customer.
func TestOnStorachasTables(t *testing.T) {
	ctx := context.Background()
	env := awsEnv(t)
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("storacha") + "-"
	storachatest.CreateTables(t, db, prefix)
	before := map[string]string{}
	for _, tb := range storachatest.Tables() {
		before[tb.Name] = storachatest.Describe(t, db, prefix+tb.Name)
	}
	name := strings.TrimSuffix(prefix, "-")
	backend := []string{"--storacha", "--tables", "dynamodb://" + prefix, "--receipts", "s3://" + name + "/receipts", "--queue", "sqs://" + name}
	runEnv(t, env, append([]string{"aws", "init"}, backend...)...)

	_, serviceKey := generateKey(t)
	const provider = "did:web:egress.example"
	// A space Storacha provisioned for alice, with the rows its code writes.
	alice, bob := "did:mailto:example.com:alice", "did:mailto:example.com:bob"
	storachaSpace, _ := signer.Generate()
	sub, err := storachatest.SubscriptionID(storachaSpace.DID().String())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(storachatest.TimeLayout)
	cause := "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	put(t, db, prefix+storachatest.Consumer, map[string]types.AttributeValue{
		"subscription": s(sub), "provider": s(provider), "consumer": s(storachaSpace.DID().String()),
		"customer": s(alice), "cause": s(cause), "insertedAt": s(now),
	})
	put(t, db, prefix+storachatest.Subscription, map[string]types.AttributeValue{
		"subscription": s(sub), "provider": s(provider), "customer": s(alice), "cause": s(cause), "insertedAt": s(now),
	})
	put(t, db, prefix+storachatest.Customer, map[string]types.AttributeValue{
		"customer": s(alice), "account": s("stripe:cus_alice"), "product": s("did:web:starter.web3.storage"), "insertedAt": s(now),
	})

	// Operator commands: bob's space is provisioned by egressd; alice's
	// cannot be taken over.
	bobSpace, _ := signer.Generate()
	runEnv(t, env, append([]string{"customer", "set", "--customer", bob, "--stripe-customer", "cus_bob", "--product", "did:web:starter.web3.storage"}, backend...)...)
	runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--did", provider, "--space", bobSpace.DID().String(), "--customer", bob}, backend...)...)
	// carol has no Stripe account yet: her events wait as unbillable.
	carol := "did:mailto:example.com:carol"
	carolSpace, _ := signer.Generate()
	runEnv(t, env, append([]string{"customer", "set", "--customer", carol, "--product", "did:web:starter.web3.storage"}, backend...)...)
	runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--did", provider, "--space", carolSpace.DID().String(), "--customer", carol}, backend...)...)
	stderr := runFailsEnv(t, env, append([]string{"provision", "--key", serviceKey, "--did", provider, "--space", storachaSpace.DID().String(), "--customer", bob}, backend...)...)
	if !strings.Contains(stderr, alice) {
		t.Errorf("provisioning Storacha's space for another customer: %q, want a refusal naming %s", stderr, alice)
	}

	// Serve and bill.
	stripe := stripetest.New(t)
	stripe.AddMeter("gateway-egress-traffic")
	srv := startServeEnv(t, env, t.TempDir(), append([]string{"--worker=false", "--key", serviceKey, "--did", provider}, backend...)...)
	startWorker(t, append(env, "STRIPE_SECRET_KEY="+stripetest.Key),
		append([]string{"--data-dir", t.TempDir(), "--stripe-url", stripe.URL, "--stripe-rate", "1000", "--worker-wait", "1s"}, backend...)...)
	service, _ := did.Parse(provider)
	var causes []string
	for i, sp := range []principal.Signer{storachaSpace, bobSpace, carolSpace} {
		for j := range 3 {
			mh, _ := multihash.Sum(fmt.Appendf(nil, "%d/%d", i, j), multihash.SHA2_256, -1)
			inv, err := client.Invoke(sp, service, client.Record{
				Space: sp.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 1000, ServedAt: time.Now(),
			})
			if err != nil {
				t.Fatal(err)
			}
			rcpts, err := client.New(srv.URL).Execute(ctx, inv)
			if err != nil {
				t.Fatal(err)
			}
			if _, x := result.Unwrap(rcpts[0].Out()); x != nil {
				t.Fatalf("record in space %d: %v", i, x)
			}
			causes = append(causes, inv.Link().String())
		}
	}
	// alice's and bob's events reach Stripe; carol's are unbillable until
	// she has an account, then a redrive bills them.
	deadline := time.Now().Add(time.Minute)
	var u usageJSON
	for time.Now().Before(deadline) {
		u = usageAWS(t, env, backend)
		if u.Ledger["reported"] == 6 && u.Ledger["unbillable"] == 3 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if u.Ledger["reported"] != 6 || u.Ledger["unbillable"] != 3 {
		t.Fatalf("usage ledger = %v, want 6 reported and carol's 3 unbillable", u.Ledger)
	}
	unbillable := runEnv(t, env, append([]string{"billing", "list", "--state", "unbillable"}, backend...)...)
	for _, c := range causes[6:] {
		if !strings.Contains(unbillable, c) {
			t.Errorf("billing list --state unbillable lacks carol's %s:\n%s", c, unbillable)
		}
	}
	runEnv(t, env, append([]string{"customer", "set", "--customer", carol, "--stripe-customer", "cus_carol"}, backend...)...)
	runEnv(t, append(env, "STRIPE_SECRET_KEY="+stripetest.Key), append([]string{"billing", "redrive", "--stripe-url", stripe.URL, "--customer", carol}, backend...)...)
	// Each customer's three events went as meter events on Storacha's
	// meter (batched by minute), 1000 bytes each.
	totals := make(map[string]int64)
	for _, ev := range stripe.Events() {
		if ev.EventName != "gateway-egress-traffic" {
			t.Errorf("meter event %+v, want it on gateway-egress-traffic", ev)
		}
		totals[ev.Customer] += ev.Value
	}
	for _, want := range []string{"cus_alice", "cus_bob", "cus_carol"} {
		if totals[want] != 3000 {
			t.Errorf("Stripe bills %s %d bytes, want its 3 events of 1000", want, totals[want])
		}
	}

	// Usage and billing list answer from the ledger and Storacha's totals.
	for time.Now().Before(deadline) {
		u = usageAWS(t, env, backend)
		if u.Ledger["reported"] == int64(len(causes)) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if u.Ledger["reported"] != int64(len(causes)) {
		t.Fatalf("usage ledger = %v, want %d reported", u.Ledger, len(causes))
	}
	listed := runEnv(t, env, append([]string{"billing", "list", "--state", "reported"}, backend...)...)
	for _, c := range causes {
		if !strings.Contains(listed, c) {
			t.Errorf("billing list --state reported lacks %s:\n%s", c, listed)
		}
	}

	// Storacha's tables: schemas unchanged, every row one Storacha writes,
	// alice's space still hers.
	for _, tb := range storachatest.Tables() {
		if after := storachatest.Describe(t, db, prefix+tb.Name); after != before[tb.Name] {
			t.Errorf("table %s changed:\nbefore %s\nafter  %s", tb.Name, before[tb.Name], after)
		}
		for _, item := range scan(t, db, prefix+tb.Name) {
			if err := storachatest.CheckWritten(tb.Name, item); err != nil {
				t.Errorf("a row of %s fails Storacha's rules: %v\n%v", tb.Name, err, item)
			}
		}
	}
	row := get(t, db, prefix+storachatest.Consumer, map[string]types.AttributeValue{"subscription": s(sub), "provider": s(provider)})
	if got := row["customer"].(*types.AttributeValueMemberS).Value; got != alice {
		t.Errorf("Storacha's space now belongs to %s, want %s", got, alice)
	}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func put(t *testing.T, db *awsdynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := db.PutItem(context.Background(), &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, db *awsdynamodb.Client, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Item) == 0 {
		t.Fatalf("GetItem(%s): %v, %d attributes", table, err, len(out.Item))
	}
	return out.Item
}

func scan(t *testing.T, db *awsdynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := awsdynamodb.NewScanPaginator(db, &awsdynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
	}
	return items
}
