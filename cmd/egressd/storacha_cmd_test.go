package main_test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
)

// TestOperatorCommandsOnStorachasTables runs provision and customer set
// with --storacha on Storacha's tables, created as w3infra creates them:
// every row they write is one Storacha's code writes, and what Storacha
// could not use is refused with the reason and the fix.
func TestOperatorCommandsOnStorachasTables(t *testing.T) {
	env := awsEnv(t)
	db := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("ops") + "-w3infra-"
	storachatest.CreateTables(t, db, prefix)
	storacha := []string{"--storacha", "--tables", "dynamodb://" + prefix}
	consumerTable, subscriptionTable, customerTable := prefix+storachatest.Consumer, prefix+storachatest.Subscription, prefix+storachatest.Customer

	_, serviceKey := generateKey(t)
	const provider = "did:web:egress.example"
	alice, bob := "did:mailto:example.com:alice", "did:mailto:example.com:bob"
	space := newSpaceDID(t)
	provision := func(args ...string) []string {
		return append(append([]string{"provision", "--key", serviceKey, "--space", space}, args...), storacha...)
	}
	customerSet := func(args ...string) []string {
		return append(append([]string{"customer", "set", "--customer", bob}, args...), storacha...)
	}
	nothingWritten := func(step string) {
		t.Helper()
		for _, table := range []string{consumerTable, subscriptionTable, customerTable} {
			if rows := scanTable(t, db, table); len(rows) != 0 {
				t.Fatalf("%s wrote to %s: %v", step, table, rows)
			}
		}
	}

	// The default provider is the service's did:key: refused.
	stderr := runFailsEnv(t, env, provision("--customer", bob)...)
	for _, want := range []string{"is not a did:web", "--did did:web:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("provision --storacha with a did:key provider: %q, want %q", stderr, want)
		}
	}
	// Bob has no plan: Storacha's provider/add would refuse him.
	stderr = runFailsEnv(t, env, provision("--did", provider, "--customer", bob)...)
	if !strings.Contains(stderr, "has no record") || !strings.Contains(stderr, "customer set --storacha --customer "+bob+" --product") {
		t.Errorf("provision --storacha for a customer without a product: %q", stderr)
	}
	// Nor can customer set create him without a product, or with one Storacha does not know.
	stderr = runFailsEnv(t, env, customerSet("--stripe-customer", "cus_bob")...)
	if !strings.Contains(stderr, "--product") || !strings.Contains(stderr, "did:web:starter.storacha.network") {
		t.Errorf("customer set --storacha without --product: %q", stderr)
	}
	for _, product := range []string{"did:web:gold.example.com", "did:web:reserved.storacha.network", "did:key:z6Mkplan"} {
		stderr = runFailsEnv(t, env, customerSet("--stripe-customer", "cus_bob", "--product", product)...)
		if !strings.Contains(stderr, product) {
			t.Errorf("customer set --storacha --product %s: %q, want a refusal naming it", product, stderr)
		}
	}
	if stderr := runFailsEnv(t, env, "customer", "set", "--customer", bob, "--product", "did:web:starter.storacha.network", "--storacha"); !strings.Contains(stderr, "--tables") {
		t.Errorf("customer set --storacha without --tables: %q", stderr)
	}
	nothingWritten("the refused commands")

	// With a product: the row Storacha's customer store writes.
	out := runEnv(t, env, customerSet("--stripe-customer", "cus_bob", "--product", "did:web:starter.storacha.network")...)
	if !strings.Contains(out, "product did:web:starter.storacha.network") {
		t.Errorf("customer set printed %q", out)
	}
	bobKey := map[string]types.AttributeValue{"customer": attrS(bob)}
	row := writtenRow(t, db, customerTable, storachatest.Customer, bobKey, "customer", "account", "product", "insertedAt", "updatedAt")
	// Later calls keep the product; another product is refused.
	runEnv(t, env, customerSet("--stripe-customer", "cus_bob2")...)
	row = writtenRow(t, db, customerTable, storachatest.Customer, bobKey, "customer", "account", "product", "insertedAt", "updatedAt")
	if attrOf(row, "product") != "did:web:starter.storacha.network" || attrOf(row, "account") != "stripe:cus_bob2" {
		t.Errorf("customer row after customer set without --product = %v", row)
	}
	stderr = runFailsEnv(t, env, customerSet("--stripe-customer", "cus_bob3", "--product", "did:web:lite.storacha.network")...)
	if !strings.Contains(stderr, "has product did:web:starter.storacha.network") {
		t.Errorf("customer set with another product: %q", stderr)
	}
	if after := getRow(t, db, customerTable, bobKey); !reflect.DeepEqual(after, row) {
		t.Errorf("a refused customer set changed %v to %v", row, after)
	}

	// Provision: the consumer and subscription rows provider/add writes.
	runEnv(t, env, provision("--did", provider, "--customer", bob)...)
	sub, err := storachatest.SubscriptionID(space)
	if err != nil {
		t.Fatal(err)
	}
	key := map[string]types.AttributeValue{"subscription": attrS(sub), "provider": attrS(provider)}
	consumer := writtenRow(t, db, consumerTable, storachatest.Consumer, key, "subscription", "provider", "consumer", "customer", "cause", "insertedAt")
	subscription := writtenRow(t, db, subscriptionTable, storachatest.Subscription, key, "subscription", "provider", "customer", "cause", "insertedAt")
	if attrOf(consumer, "customer") != bob || attrOf(consumer, "consumer") != space || attrOf(subscription, "customer") != bob || attrOf(consumer, "cause") != attrOf(subscription, "cause") {
		t.Errorf("consumer row %v, subscription row %v: want bob's space, one cause", consumer, subscription)
	}
	// Again: nothing changes. The same space for alice: refused, named, nothing changes.
	before := [][]map[string]types.AttributeValue{scanTable(t, db, consumerTable), scanTable(t, db, subscriptionTable)}
	runEnv(t, env, provision("--did", provider, "--customer", bob)...)
	runEnv(t, env, "customer", "set", "--customer", alice, "--product", "did:web:lite.storacha.network", "--storacha", "--tables", "dynamodb://"+prefix)
	stderr = runFailsEnv(t, env, provision("--did", provider, "--customer", alice)...)
	for _, want := range []string{"already provisioned for " + bob, "Storacha never\nreassigns a space", "provision a space of theirs"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("provisioning bob's space for alice: %q, want %q", stderr, want)
		}
	}
	stderr = runFailsEnv(t, env, provision("--provider", "did:web:other.example", "--customer", bob)...)
	if !strings.Contains(stderr, "--alias "+provider) {
		t.Errorf("provisioning bob's space under another provider: %q, want the --alias advice", stderr)
	}
	after := [][]map[string]types.AttributeValue{scanTable(t, db, consumerTable), scanTable(t, db, subscriptionTable)}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("provisioning again and the refusals changed the rows:\nbefore %v\nafter  %v", before, after)
	}
	for _, table := range []string{consumerTable, subscriptionTable, customerTable} {
		for _, row := range scanTable(t, db, table) {
			if err := storachatest.CheckWritten(strings.TrimPrefix(table, prefix), row); err != nil {
				t.Errorf("%s: %v", table, err)
			}
		}
	}
}

// TestServeRefusesADIDKeyWithStoracha: serve on Storacha's tables must
// answer as a did:web, as every provider of Storacha's is.
func TestServeRefusesADIDKeyWithStoracha(t *testing.T) {
	_, serviceKey := generateKey(t)
	stderr := runFails(t, "serve", "--data-dir", t.TempDir(), "--key", serviceKey, "--storacha", "--tables", "dynamodb://unused-", "--metrics-listen", "off")
	for _, want := range []string{"--storacha: the service DID did:key:", "is not a did:web", "--did did:web:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("serve --storacha with a did:key: %q, want %q", stderr, want)
		}
	}
}

// TestOperatorCommandsEmbedded: the embedded store keeps the same rules; a
// new customer gets the default product.
func TestOperatorCommandsEmbedded(t *testing.T) {
	data := t.TempDir()
	alice, bob := "did:mailto:example.com:alice", "did:mailto:example.com:bob"
	space := newSpaceDID(t)
	const provider = "did:web:egress.example"
	run(t, "provision", "--data-dir", data, "--space", space, "--customer", alice, "--provider", provider)
	run(t, "provision", "--data-dir", data, "--space", space, "--customer", alice, "--provider", provider)
	stderr := runFails(t, "provision", "--data-dir", data, "--space", space, "--customer", bob, "--provider", provider)
	if !strings.Contains(stderr, "already provisioned for "+alice) {
		t.Errorf("provisioning alice's space for bob: %q", stderr)
	}
	out := run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	if !strings.Contains(out, "product "+customers.DefaultProduct) {
		t.Errorf("customer set of a customer provision created: %q, want the default product", out)
	}
	out = run(t, "customer", "set", "--data-dir", data, "--customer", bob, "--product", "did:web:plan.example.com")
	if !strings.Contains(out, "product did:web:plan.example.com") {
		t.Errorf("customer set --product: %q", out)
	}
	if stderr := runFails(t, "customer", "set", "--data-dir", data, "--customer", bob, "--product", "plan"); !strings.Contains(stderr, "did:web") {
		t.Errorf("customer set --product plan: %q, want a did:web asked for", stderr)
	}
}

func newSpaceDID(t *testing.T) string {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s.DID().String()
}

// writtenRow reads the row at key, checks it is one Storacha's code writes
// (kind is the storachatest table name) with exactly the attributes names.
func writtenRow(t *testing.T, db *awsdynamodb.Client, table, kind string, key map[string]types.AttributeValue, names ...string) map[string]types.AttributeValue {
	t.Helper()
	row := getRow(t, db, table, key)
	if row == nil {
		t.Fatalf("no %s row at %v", kind, key)
	}
	if err := storachatest.CheckWritten(kind, row); err != nil {
		t.Errorf("%s row %v is not one Storacha writes: %v", kind, row, err)
	}
	got := slices.Sorted(maps.Keys(row))
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s row has %v, want %v", kind, got, names)
	}
	return row
}

func getRow(t *testing.T, db *awsdynamodb.Client, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetItem(%s): %v", table, err)
	}
	return out.Item
}

func scanTable(t *testing.T, db *awsdynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Scan(context.Background(), &awsdynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("Scan(%s): %v", table, err)
	}
	return out.Items
}

func attrS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func attrOf(row map[string]types.AttributeValue, name string) string {
	if v, ok := row[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
