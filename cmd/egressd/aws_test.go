package main_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/stripetest"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
	"github.com/egressd/egressd/internal/testenv"
)

// awsEnv points an egressd process at the local stand-ins the way an
// operator would: AWS_REGION, credentials and the per-service endpoint
// variables. Nothing else of the machine's AWS set-up reaches the process.
func awsEnv(t *testing.T) []string {
	t.Helper()
	env := []string{
		"AWS_ENDPOINT_URL=", "AWS_PROFILE=", "AWS_DEFAULT_REGION=",
		"AWS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(t.TempDir(), "none"),
	}
	for _, svc := range []string{testenv.S3, testenv.SQS, testenv.DynamoDB} {
		u := testenv.URL(t, svc)
		testenv.Reachable(t, u)
		env = append(env, "AWS_ENDPOINT_URL_"+svc+"="+u)
	}
	for _, v := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if os.Getenv(v) == "" {
			t.Fatalf("%s is not set: run the tests with `bash scripts/test.sh`, or `eval \"$(bash scripts/services.sh env)\"` first", v)
		}
		env = append(env, v+"="+os.Getenv(v))
	}
	return env
}

// TestBadBackendURLs: a mistyped backend URL is named, with the shape
// expected, before any AWS configuration is looked at.
func TestBadBackendURLs(t *testing.T) {
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--queue", []string{"usage", "--queue", "https://sqs.example.com/events"}},
		{"--receipts", []string{"worker", "--receipts", "s3://Receipts"}},
		{"--tables", []string{"customer", "set", "--tables", "dynamodb://a/b", "--customer", "did:mailto:example.com:bob"}},
		{"--queue", []string{"aws", "init", "--queue", "sqs://events.fifo"}},
	} {
		stderr := runFails(t, tc.args...)
		if !strings.Contains(stderr, tc.flag+":") {
			t.Errorf("egressd %s: error %q does not name %s", strings.Join(tc.args, " "), stderr, tc.flag)
		}
	}
}

// startWorker starts `egressd worker`, stopped when the test ends.
func startWorker(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), append([]string{"worker"}, args...)...)
	cmd.Env = isolatedEnv(env...)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("worker log:\n%s", log)
		}
	})
	return cmd
}

// TestTwoReplicasTwoWorkersOnAWS runs egressd as it runs on AWS: two
// `serve --worker=false` replicas and two `worker` sidecars sharing one S3
// bucket, one SQS queue and the DynamoDB tables, billing a stateful fake
// Stripe. Invocations go to either replica, some twice (a gateway retrying
// on the other replica). Every event must reach Stripe exactly once with
// its bytes, be counted once in the monthly totals, and every receipt must
// be served by both replicas.
func TestTwoReplicasTwoWorkersOnAWS(t *testing.T) {
	ctx := context.Background()
	env := awsEnv(t)
	prefix := awstest.Name("e2e")
	backend := []string{"--receipts", "s3://" + prefix + "/receipts", "--queue", "sqs://" + prefix, "--tables", "dynamodb://" + prefix + "-"}

	// aws init creates everything and is safe to run again.
	for range 2 {
		out := runEnv(t, env, append([]string{"aws", "init", "--max-receives", "5"}, backend...)...)
		for _, want := range []string{"receipts: s3://" + prefix + "/receipts ready", "queue: " + prefix + " ready", prefix + "-egress-traffic-events"} {
			if !strings.Contains(out, want) {
				t.Fatalf("aws init printed %q, want %q", out, want)
			}
		}
	}

	serviceDID, serviceKey := generateKey(t)
	service, err := did.Parse(serviceDID)
	if err != nil {
		t.Fatal(err)
	}
	// Customers and spaces go to DynamoDB, with the commands an operator uses.
	customers := []string{"did:mailto:example.com:alice", "did:mailto:example.com:bob", "did:mailto:example.com:carol"}
	var spaces []principal.Signer
	spaceCustomer := map[string]string{}
	for i, customer := range customers {
		runEnv(t, env, append([]string{"customer", "set", "--customer", customer, "--stripe-customer", fmt.Sprintf("cus_%d", i)}, backend...)...)
		for range 2 {
			space, err := signer.Generate()
			if err != nil {
				t.Fatal(err)
			}
			runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--space", space.DID().String(), "--customer", customer}, backend...)...)
			spaces = append(spaces, space)
			spaceCustomer[space.DID().String()] = fmt.Sprintf("cus_%d", i)
		}
	}

	stripe := stripetest.New(t)
	stripe.AddMeter("egress")
	serveArgs := append([]string{"--worker=false", "--key", serviceKey}, backend...)
	replicas := []*serveProcess{
		startServeEnv(t, env, t.TempDir(), serveArgs...),
		startServeEnv(t, env, t.TempDir(), serveArgs...),
	}
	workerEnv := append(env, "STRIPE_SECRET_KEY="+stripetest.Key)
	workerArgs := append([]string{"--data-dir", t.TempDir(), "--stripe-url", stripe.URL, "--stripe-rate", "1000", "--worker-wait", "1s", "--log-level", "warn"}, backend...)
	workers := []*exec.Cmd{startWorker(t, workerEnv, workerArgs...), startWorker(t, workerEnv, workerArgs...)}

	// Record: four gateways, each alternating between the replicas, one to
	// five invocations per request; every seventh request is sent again to
	// the other replica.
	const perGateway = 60
	var (
		mu      sync.Mutex
		bytesOf = map[string]int64{} // by cause
		spaceOf = map[string]string{}
		resent  int
		wg      sync.WaitGroup
	)
	for g := range 4 {
		wg.Go(func() {
			for req, sent := 0, 0; sent < perGateway; req++ {
				n := min(1+rand.IntN(5), perGateway-sent)
				invs := make([]invocation.Invocation, n)
				recs := make([]client.Record, n)
				for i := range invs {
					space := spaces[rand.IntN(len(spaces))]
					mh, _ := multihash.Sum(fmt.Appendf(nil, "%d/%d/%d", g, req, i), multihash.SHA2_256, -1)
					recs[i] = client.Record{
						Space: space.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)},
						Bytes: 1 + rand.Int64N(1<<20), ServedAt: time.Now(),
					}
					inv, err := client.Invoke(space, service, recs[i])
					if err != nil {
						t.Error(err)
						return
					}
					invs[i] = inv
				}
				targets := []*serveProcess{replicas[req%2]}
				if req%7 == 3 {
					targets = append(targets, replicas[(req+1)%2])
				}
				for _, target := range targets {
					rcpts, err := client.New(target.URL).Execute(ctx, invs...)
					if err != nil {
						t.Errorf("recording on %s: %v", target.URL, err)
						return
					}
					for i, r := range rcpts {
						if _, x := result.Unwrap(r.Out()); x != nil {
							t.Errorf("invocation %s failed: %v", invs[i].Link(), x)
							return
						}
					}
				}
				mu.Lock()
				for i, inv := range invs {
					cause := inv.Link().String()
					bytesOf[cause] = recs[i].Bytes
					spaceOf[cause] = recs[i].Space.String()
				}
				if len(targets) == 2 {
					resent += n
				}
				mu.Unlock()
				sent += n
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var total int64
	for _, b := range bytesOf {
		total += b
	}
	t.Logf("recorded %d events (%d sent twice) of %d bytes through two replicas", len(bytesOf), resent, total)

	// Stripe gets every event, once, with its bytes and customer: the
	// worker sends a customer's events of one minute as one meter event,
	// so what Stripe bills each customer must be the sum of its events.
	want := make(map[string]int64)
	for cause, b := range bytesOf {
		want[spaceCustomer[spaceOf[cause]]] += b
	}
	billed := func() (map[string]int64, int64) {
		got := stripe.Totals()
		var sum int64
		for _, v := range got {
			sum += v
		}
		return got, sum
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, sum := billed(); sum < total && time.Now().Before(deadline); _, sum = billed() {
		time.Sleep(100 * time.Millisecond)
	}
	got, reported := billed()
	for customer, b := range want {
		if got[customer] != b {
			t.Errorf("Stripe bills %s %d bytes, its events add up to %d", customer, got[customer], b)
		}
	}
	if reported != total {
		t.Errorf("Stripe was sent %d bytes in all, %d were recorded", reported, total)
	}
	t.Logf("%d events reached Stripe as %d meter events", len(bytesOf), len(stripe.Events()))

	// The ledger counted each event once, settled them all, and the queue
	// drained (SQS's counts are approximate: poll).
	var u usageJSON
	for {
		u = usageAWS(t, env, backend)
		if u.Ledger["reported"] == int64(len(bytesOf)) && u.Queue.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("billing did not settle: %+v", u)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if u.Events != int64(len(bytesOf)) || u.Bytes != total {
		t.Fatalf("monthly totals: %d events of %d bytes, want %d of %d", u.Events, u.Bytes, len(bytesOf), total)
	}

	// Every receipt, from either replica.
	for cause := range bytesOf {
		var seen []string
		for _, r := range replicas {
			rcpt, err := client.New(r.URL).Receipt(ctx, cause)
			if err != nil {
				t.Fatalf("receipt of %s from %s: %v", cause, r.URL, err)
			}
			seen = append(seen, rcpt.Root().Link().String())
		}
		if seen[0] != seen[1] {
			t.Fatalf("the replicas serve different receipts for %s: %v", cause, seen)
		}
	}

	for _, w := range workers {
		stopProcess(t, w)
	}
	for _, r := range replicas {
		r.stop(t)
	}
}

// usageAWS is `egressd usage --json` on the AWS backends.
func usageAWS(t *testing.T, env, backend []string) usageJSON {
	t.Helper()
	return decodeUsage(t, runEnv(t, env, append([]string{"usage", "--json", "--data-dir", t.TempDir()}, backend...)...))
}

// TestBillingRedriveOnAWS is the billing tour on DynamoDB: an event of a
// customer without a Stripe account stays unbillable, `billing list` finds
// it (through the ledger table's state index), and once the account is set
// `billing redrive` bills it, once.
func TestBillingRedriveOnAWS(t *testing.T) {
	env := awsEnv(t)
	prefix := awstest.Name("redrive")
	backend := []string{"--receipts", "s3://" + prefix, "--queue", "sqs://" + prefix, "--tables", "dynamodb://" + prefix + "-"}
	runEnv(t, env, append([]string{"aws", "init"}, backend...)...)
	_, serviceKey := generateKey(t)
	stripe := stripetest.New(t)
	stripe.AddMeter("egress")
	stripeFlags := []string{"--stripe-url", stripe.URL, "--stripe-key", stripetest.Key}
	srv := startServeEnv(t, env, t.TempDir(), append(append([]string{"--key", serviceKey, "--worker-wait", "100ms"}, stripeFlags...), backend...)...)

	const bob = "did:mailto:example.com:bob"
	spaceDID, spaceKey := generateKey(t)
	runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--space", spaceDID, "--customer", bob}, backend...)...)
	out := run(t, "record", "--url", srv.URL, "--key", spaceKey,
		"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "2048")
	recorded := decodeView(t, out)
	if recorded.Error != nil {
		t.Fatalf("record failed: %s", recorded.Error)
	}

	deadline := time.Now().Add(time.Minute)
	for {
		u := usageAWS(t, env, backend)
		if u.Ledger["unbillable"] == 1 && u.Queue.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event did not settle as unbillable: %+v", u)
		}
		time.Sleep(100 * time.Millisecond)
	}
	list := runEnv(t, env, append([]string{"billing", "list"}, backend...)...)
	if !strings.Contains(list, recorded.Invocation) || !strings.Contains(list, billing.ReasonNoAccount) {
		t.Fatalf("billing list does not show the unbillable event and why:\n%s", list)
	}
	if len(stripe.Events()) != 0 {
		t.Fatalf("Stripe was sent %d events for a customer without an account", len(stripe.Events()))
	}

	runEnv(t, env, append([]string{"customer", "set", "--customer", bob, "--stripe-customer", "cus_bob"}, backend...)...)
	out = runEnv(t, env, append(append([]string{"billing", "redrive"}, stripeFlags...), backend...)...)
	if !strings.Contains(out, "reported 1") {
		t.Fatalf("billing redrive printed %q, want 1 reported", out)
	}
	if ev, ok := stripe.Events()[recorded.Invocation]; !ok || ev.Value != 2048 || ev.Customer != "cus_bob" {
		t.Fatalf("Stripe has %+v for the redriven event, want 2048 bytes for cus_bob", stripe.Events())
	}
	if u := usageAWS(t, env, backend); u.Ledger["reported"] != 1 || u.Ledger["unbillable"] != 0 || u.Events != 1 || u.Bytes != 2048 {
		t.Fatalf("after redrive: %+v; want one reported event of 2048 bytes, counted once", u)
	}
	srv.stop(t)
}

// TestAWSInitStoracha is `egressd aws init --storacha` on tables made as
// Storacha's stack makes them: it names each table and what it did (checked
// Storacha's six, created egressd's ledger), Storacha's schemas are the same
// after as before, and a second run only checks.
func TestAWSInitStoracha(t *testing.T) {
	env := awsEnv(t)
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3infra") + "-"
	storachatest.CreateTables(t, db, prefix)
	before := map[string]string{}
	for _, tb := range storachatest.Tables() {
		before[tb.Name] = storachatest.Describe(t, db, prefix+tb.Name)
	}
	args := []string{"aws", "init", "--storacha", "--tables", "dynamodb://" + prefix}
	for run, ledger := range []string{"created", "checked"} {
		out := runEnv(t, env, args...)
		summary := "tables: ready (1 created, 6 checked)"
		if ledger == "checked" {
			summary = "tables: ready (0 created, 7 checked)"
		}
		for _, want := range []string{
			summary,
			"table " + prefix + "consumer (consumer): checked",
			"table " + prefix + "subscription (subscription): checked",
			"table " + prefix + "customer (customer): checked",
			"table " + prefix + "revocation (revocation): checked",
			"table " + prefix + "egress-traffic-events (events): checked",
			"table " + prefix + "egress-traffic-monthly (monthly): checked",
			"table " + prefix + "egressd-ledger (ledger): " + ledger,
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("aws init --storacha, run %d, printed:\n%s\nwant the line %q", run+1, out, want)
			}
		}
	}
	for _, tb := range storachatest.Tables() {
		if after := storachatest.Describe(t, db, prefix+tb.Name); after != before[tb.Name] {
			t.Errorf("aws init --storacha changed table %s:\nbefore:\n%s\nafter:\n%s", prefix+tb.Name, before[tb.Name], after)
		}
	}
}

// TestAWSInitRefusesTables: aws init fails, saying why, on a Storacha table
// that is not laid out as egressd needs, and with --storacha on a Storacha
// table that does not exist; it creates nothing then.
func TestAWSInitRefusesTables(t *testing.T) {
	env := awsEnv(t)
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("refused") + "-"
	for _, tb := range storachatest.Tables() {
		switch tb.Name {
		case storachatest.Subscription:
			continue // missing
		case storachatest.Consumer:
			tb.Indexes = slices.DeleteFunc(tb.Indexes, func(ix storachatest.Index) bool { return ix.Name == "consumerV2" })
		}
		storachatest.CreateTable(t, db, prefix+tb.Name, tb)
	}
	before := map[string]string{}
	for _, tb := range storachatest.Tables() {
		if tb.Name != storachatest.Subscription {
			before[tb.Name] = storachatest.Describe(t, db, prefix+tb.Name)
		}
	}
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{[]string{"--storacha"}, []string{
			"--storacha: table " + prefix + "subscription does not exist: create Storacha's tables with their own stack",
			"table " + prefix + "consumer (consumer) is not laid out as egressd needs: it has no global secondary index consumerV2",
			"egressd never changes a table it did not create",
		}},
		{nil, []string{
			"table " + prefix + "consumer (consumer) is not laid out as egressd needs: it has no global secondary index consumerV2",
		}},
	} {
		stderr := awsInitFails(t, env, append(tc.flags, "--tables", "dynamodb://"+prefix)...)
		for _, want := range tc.want {
			if !strings.Contains(stderr, want) {
				t.Errorf("aws init %v failed with:\n%s\nwant it to say %q", tc.flags, stderr, want)
			}
		}
	}
	for _, name := range []string{prefix + "subscription", prefix + "egressd-ledger"} {
		_, err := db.DescribeTable(context.Background(), &awsdynamodb.DescribeTableInput{TableName: aws.String(name)})
		var missing *dbtypes.ResourceNotFoundException
		if !errors.As(err, &missing) {
			t.Errorf("table %s after a refused aws init: %v, want it not to exist", name, err)
		}
	}
	for _, tb := range storachatest.Tables() {
		if was, ok := before[tb.Name]; ok {
			if after := storachatest.Describe(t, db, prefix+tb.Name); after != was {
				t.Errorf("a refused aws init changed table %s:\nbefore:\n%s\nafter:\n%s", prefix+tb.Name, was, after)
			}
		}
	}
}

// awsInitFails runs `egressd aws init args...`, which must fail, and
// returns its stderr.
func awsInitFails(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), append([]string{"aws", "init"}, args...)...)
	cmd.Env = isolatedEnv(env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("egressd aws init %s succeeded, want a failure", strings.Join(args, " "))
	}
	return stderr.String()
}
