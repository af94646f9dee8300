package dynamodb_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/customers/dynamodb"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
)

// The tests here run the store on Storacha's tables, created exactly as
// w3infra's stack creates them, and hold every row it writes to the rules
// of Storacha's decoders and writers (storachatest.CheckWritten).

const (
	storachaProvider = "did:web:up.storacha.network"
	starter          = "did:web:starter.storacha.network"
	lite             = "did:web:lite.storacha.network"
	// The CID of a provider/add invocation, as Storacha writes for cause.
	invocationCID = "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe"
	// space2Cause is ProvisionCause(space2, customerBob, service) as
	// JavaScript computes it: CID.create(1, dagCbor.code, await
	// sha256.digest(dagCbor.encode({can: 'provider/add', with: bob, nb:
	// {consumer: space2, provider: service}}))).toString().
	space2Cause = "bafyreide7dn2mv4ivxqo4edz2nnxlvatclyn3qxwge23z5sxryznsg2t7m"
)

// storachaTables creates Storacha's six tables under a fresh
// "<stage>-w3infra-" prefix and returns a store on them, with the
// subscription table named by default (SubscriptionTable) as --tables does.
func storachaTables(t *testing.T) (*awsdynamodb.Client, awsconfig.Tables, *dynamodb.Store) {
	t.Helper()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3") + "-w3infra-"
	storachatest.CreateTables(t, client, prefix)
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got := dynamodb.SubscriptionTable(tables.Consumer); got != tables.Subscription {
		t.Fatalf("SubscriptionTable(%s) = %s, want %s", tables.Consumer, got, tables.Subscription)
	}
	return client, tables, dynamodb.New(client, dynamodb.Tables{Consumer: tables.Consumer, Customer: tables.Customer})
}

func TestProvisionCauseMatchesJavaScript(t *testing.T) {
	got, err := dynamodb.ProvisionCause(space2, customerBob, service)
	if err != nil {
		t.Fatal(err)
	}
	if got != space2Cause {
		t.Errorf("ProvisionCause = %s, want %s (@ipld/dag-cbor's)", got, space2Cause)
	}
}

// TestProvisionWritesWhatStorachaWrites provisions a space for a customer
// Storacha knows (a plan picked, so a product) and reads back the two rows
// provider/add would have written.
func TestProvisionWritesWhatStorachaWrites(t *testing.T) {
	ctx := context.Background()
	client, tables, store := storachaTables(t)
	putItem(t, client, tables.Customer, map[string]types.AttributeValue{
		"customer": s(customerBob), "account": s("stripe:cus_bob"), "product": s(starter), "insertedAt": s("2024-03-01T10:00:00.000Z"),
	})
	customerBefore := item(t, client, tables.Customer, map[string]string{"customer": customerBob})

	p := customers.Provisioning{Space: space2, Customer: customerBob, Provider: service}
	if err := store.ProvisionSpace(ctx, p); err != nil {
		t.Fatal(err)
	}
	key := map[string]string{"subscription": space2Sub, "provider": service}
	consumer := checkWritten(t, client, tables.Consumer, storachatest.Consumer, key)
	subscription := checkWritten(t, client, tables.Subscription, storachatest.Subscription, key)
	wantAttrs(t, "consumer", consumer, "subscription", "provider", "consumer", "customer", "cause", "insertedAt")
	wantAttrs(t, "subscription", subscription, "subscription", "provider", "customer", "cause", "insertedAt")
	for name, row := range map[string]map[string]types.AttributeValue{"consumer": consumer, "subscription": subscription} {
		if str(row["customer"]) != customerBob || str(row["cause"]) != space2Cause {
			t.Errorf("%s row: customer %s, cause %s; want %s, %s", name, str(row["customer"]), str(row["cause"]), customerBob, space2Cause)
		}
	}
	if str(consumer["consumer"]) != space2 || str(consumer["insertedAt"]) != str(subscription["insertedAt"]) {
		t.Errorf("consumer row %v, subscription row %v: want the space, and one insertedAt", consumer, subscription)
	}
	if got := item(t, client, tables.Customer, map[string]string{"customer": customerBob}); !reflect.DeepEqual(got, customerBefore) {
		t.Errorf("customer row after provisioning = %v, want it untouched: %v", got, customerBefore)
	}
	if got, err := store.Customer(ctx, space2, []string{service}); err != nil || got != customerBob {
		t.Errorf("Customer = %q, %v; want %s", got, err, customerBob)
	}

	// Again: a no-op, the rows stay as they are, insertedAt included.
	before := scanAll(t, client, tables)
	if err := store.ProvisionSpace(ctx, p); err != nil {
		t.Fatalf("provisioning again: %v", err)
	}
	if err := store.Provision(ctx, space2, customerBob, service); err != nil {
		t.Fatalf("provisioning again with a default product: %v", err)
	}
	if after := scanAll(t, client, tables); !reflect.DeepEqual(after, before) {
		t.Errorf("provisioning again changed the tables:\nbefore %v\nafter  %v", before, after)
	}
}

// TestProvisionNeverTakesAStorachaSpace: a space Storacha provisioned for
// Alice stays hers, whoever asks and under whatever provider, and nothing in
// any table changes.
func TestProvisionNeverTakesAStorachaSpace(t *testing.T) {
	ctx := context.Background()
	client, tables, store := storachaTables(t)
	for _, c := range []string{customerAlice, customerBob} {
		putItem(t, client, tables.Customer, map[string]types.AttributeValue{
			"customer": s(c), "product": s(starter), "insertedAt": s("2024-03-01T10:00:00.000Z"),
		})
	}
	// What Storacha's provider/add wrote for Alice.
	putItem(t, client, tables.Subscription, map[string]types.AttributeValue{
		"subscription": s(space1Sub), "provider": s(storachaProvider), "customer": s(customerAlice),
		"cause": s(invocationCID), "insertedAt": s("2024-03-01T10:00:00.000Z"),
	})
	putItem(t, client, tables.Consumer, map[string]types.AttributeValue{
		"subscription": s(space1Sub), "provider": s(storachaProvider), "consumer": s(space1), "customer": s(customerAlice),
		"cause": s(invocationCID), "insertedAt": s("2024-03-01T10:00:00.000Z"),
	})
	before := scanAll(t, client, tables)

	for _, p := range []struct{ customer, provider string }{
		{customerBob, storachaProvider}, // another customer
		{customerBob, service},          // another customer, another provider
		{customerAlice, service},        // a second provider
	} {
		err := store.ProvisionSpace(ctx, customers.Provisioning{Space: space1, Customer: p.customer, Provider: p.provider})
		if !errors.Is(err, customers.ErrAlreadyProvisioned) {
			t.Fatalf("ProvisionSpace(space1, %s, %s) = %v, want customers.ErrAlreadyProvisioned", p.customer, p.provider, err)
		}
		var held *customers.AlreadyProvisionedError
		if !errors.As(err, &held) || held.Customer != customerAlice || held.Provider != storachaProvider || held.Table != "consumer" {
			t.Errorf("ProvisionSpace(space1, %s, %s) = %#v, want it held by alice under %s (consumer)", p.customer, p.provider, err, storachaProvider)
		}
	}
	// Alice under Storacha's provider is what is there: nothing to do.
	if err := store.ProvisionSpace(ctx, customers.Provisioning{Space: space1, Customer: customerAlice, Provider: storachaProvider}); err != nil {
		t.Errorf("provisioning what Storacha provisioned = %v, want a no-op", err)
	}
	if after := scanAll(t, client, tables); !reflect.DeepEqual(after, before) {
		t.Errorf("refused provisionings changed the tables:\nbefore %v\nafter  %v", before, after)
	}
	if got, err := store.Customer(ctx, space1, []string{service, storachaProvider}); err != nil || got != customerAlice {
		t.Errorf("Customer(space1) = %q, %v; want %s", got, err, customerAlice)
	}

	// A subscription row alone (Storacha's consumer write failed after it)
	// holds the space just the same.
	space2Row := map[string]types.AttributeValue{
		"subscription": s(space2Sub), "provider": s(storachaProvider), "customer": s(customerAlice),
		"cause": s(invocationCID), "insertedAt": s("2024-03-01T10:00:00.000Z"),
	}
	putItem(t, client, tables.Subscription, space2Row)
	err := store.ProvisionSpace(ctx, customers.Provisioning{Space: space2, Customer: customerBob, Provider: storachaProvider})
	var held *customers.AlreadyProvisionedError
	if !errors.As(err, &held) || held.Customer != customerAlice || held.Table != "subscription" {
		t.Errorf("ProvisionSpace(space2) over alice's subscription row = %v, want it held by alice (subscription)", err)
	}
	if row := item(t, client, tables.Consumer, map[string]string{"subscription": space2Sub, "provider": storachaProvider}); row != nil {
		t.Errorf("a refused provisioning wrote a consumer row: %v", row)
	}
}

// TestProvisionNeedsAProductUnderStoracha: Storacha's provider/add never
// creates a customer and wants a plan; so does ProvisionSpace with no
// product to give.
func TestProvisionNeedsAProductUnderStoracha(t *testing.T) {
	ctx := context.Background()
	client, tables, store := storachaTables(t)
	p := customers.Provisioning{Space: space2, Customer: customerBob, Provider: service}
	if err := store.ProvisionSpace(ctx, p); !errors.Is(err, customers.ErrNoProduct) {
		t.Fatalf("ProvisionSpace(unknown customer) = %v, want customers.ErrNoProduct", err)
	}
	if rows := scanAll(t, client, tables); len(rows) != 0 {
		t.Errorf("a refused provisioning wrote %v", rows)
	}
	if _, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: customerBob, Product: starter}); err != nil {
		t.Fatal(err)
	}
	if err := store.ProvisionSpace(ctx, p); err != nil {
		t.Fatal(err)
	}
	checkWritten(t, client, tables.Customer, storachatest.Customer, map[string]string{"customer": customerBob})
	checkWritten(t, client, tables.Consumer, storachatest.Consumer, map[string]string{"subscription": space2Sub, "provider": service})
	checkWritten(t, client, tables.Subscription, storachatest.Subscription, map[string]string{"subscription": space2Sub, "provider": service})
}

// TestProvisionCompletesOlderRows: rows an older egressd wrote (a consumer
// row without cause, no subscription row, a customer without product) are
// completed by provisioning the same space for the same customer again.
func TestProvisionCompletesOlderRows(t *testing.T) {
	ctx := context.Background()
	client, tables, store := storachaTables(t)
	putItem(t, client, tables.Customer, map[string]types.AttributeValue{
		"customer": s(customerBob), "account": s("stripe:cus_bob"),
		"insertedAt": s("2025-01-01T00:00:00.000Z"), "updatedAt": s("2025-01-01T00:00:00.000Z"),
	})
	putItem(t, client, tables.Consumer, map[string]types.AttributeValue{
		"subscription": s(space2Sub), "provider": s(service), "consumer": s(space2), "customer": s(customerBob),
		"insertedAt": s("2025-01-01T00:00:00.000Z"), "updatedAt": s("2025-01-01T00:00:00.000Z"),
	})
	p := customers.Provisioning{Space: space2, Customer: customerBob, Provider: service}
	if err := store.ProvisionSpace(ctx, p); !errors.Is(err, customers.ErrNoProduct) {
		t.Fatalf("ProvisionSpace(customer without product) = %v, want customers.ErrNoProduct", err)
	}
	r, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: customerBob, Account: "stripe:cus_bob", Product: starter})
	if err != nil || r.Product != starter {
		t.Fatalf("SetCustomer(product %s) = %+v, %v", starter, r, err)
	}
	if err := store.ProvisionSpace(ctx, p); err != nil {
		t.Fatal(err)
	}
	key := map[string]string{"subscription": space2Sub, "provider": service}
	consumer := checkWritten(t, client, tables.Consumer, storachatest.Consumer, key)
	subscription := checkWritten(t, client, tables.Subscription, storachatest.Subscription, key)
	if str(consumer["cause"]) != space2Cause || str(subscription["cause"]) != space2Cause || str(consumer["insertedAt"]) != "2025-01-01T00:00:00.000Z" {
		t.Errorf("completed rows: consumer %v, subscription %v", consumer, subscription)
	}
	customer := checkWritten(t, client, tables.Customer, storachatest.Customer, map[string]string{"customer": customerBob})
	if str(customer["insertedAt"]) != "2025-01-01T00:00:00.000Z" || str(customer["account"]) != "stripe:cus_bob" {
		t.Errorf("customer row = %v, want insertedAt and account kept", customer)
	}
}

// TestSetCustomerOnStorachaRows: a customer row Storacha wrote keeps every
// attribute but the account; a new one is created only with a product.
func TestSetCustomerOnStorachaRows(t *testing.T) {
	ctx := context.Background()
	client, tables, store := storachaTables(t)
	alice := map[string]types.AttributeValue{
		"customer": s(customerAlice), "account": s("stripe:cus_alice"), "product": s("did:web:reserved.storacha.network"),
		"details": s(`{"github":{"id":1}}`), "reservedCapacity": &types.AttributeValueMemberN{Value: "1099511627776"},
		"insertedAt": s("2024-03-01T10:00:00.000Z"),
	}
	putItem(t, client, tables.Customer, alice)
	r, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: customerAlice, Account: "stripe:cus_alice2"})
	if err != nil || r.Product != "did:web:reserved.storacha.network" || r.Account != "stripe:cus_alice2" {
		t.Fatalf("SetCustomer(alice) = %+v, %v", r, err)
	}
	got := checkWritten(t, client, tables.Customer, storachatest.Customer, map[string]string{"customer": customerAlice})
	want := maps.Clone(alice)
	want["account"] = s("stripe:cus_alice2")
	want["updatedAt"] = got["updatedAt"]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alice's row = %v\nwant %v", got, want)
	}

	carol := "did:mailto:example.com:carol"
	carolKey := map[string]string{"customer": carol}
	if _, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: carol, Account: "stripe:cus_carol"}); !errors.Is(err, customers.ErrNoProduct) {
		t.Fatalf("SetCustomer(new, no product) = %v, want customers.ErrNoProduct", err)
	}
	if row := item(t, client, tables.Customer, carolKey); row != nil {
		t.Fatalf("a refused SetCustomer wrote %v", row)
	}
	if _, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: carol, Account: "stripe:cus_carol", Product: starter}); err != nil {
		t.Fatal(err)
	}
	row := checkWritten(t, client, tables.Customer, storachatest.Customer, carolKey)
	wantAttrs(t, "customer", row, "customer", "account", "product", "insertedAt", "updatedAt")
	if _, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: carol, Product: lite}); !errors.Is(err, customers.ErrProductMismatch) {
		t.Fatalf("SetCustomer(another product) = %v, want customers.ErrProductMismatch", err)
	}
	if after := item(t, client, tables.Customer, carolKey); !reflect.DeepEqual(after, row) {
		t.Errorf("a refused SetCustomer changed %v to %v", row, after)
	}
	if _, err := store.SetCustomer(ctx, customers.CustomerUpdate{Customer: carol}); err != nil {
		t.Fatal(err)
	}
	row = checkWritten(t, client, tables.Customer, storachatest.Customer, carolKey)
	wantAttrs(t, "customer", row, "customer", "product", "insertedAt", "updatedAt")
}

// checkWritten reads the row at key and fails the test unless Storacha's
// code could have written it.
func checkWritten(t *testing.T, client *awsdynamodb.Client, table, kind string, key map[string]string) map[string]types.AttributeValue {
	t.Helper()
	row := item(t, client, table, key)
	if row == nil {
		t.Fatalf("no %s row at %v", kind, key)
	}
	if err := storachatest.CheckWritten(kind, row); err != nil {
		t.Errorf("%s row %v is not one Storacha writes:\n%v", kind, row, err)
	}
	return row
}

// wantAttrs checks row has exactly the attributes names.
func wantAttrs(t *testing.T, kind string, row map[string]types.AttributeValue, names ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(row))
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s row has attributes %v, want %v (what Storacha writes)", kind, got, names)
	}
}

func item(t *testing.T, client *awsdynamodb.Client, table string, key map[string]string) map[string]types.AttributeValue {
	t.Helper()
	k := map[string]types.AttributeValue{}
	for n, v := range key {
		k[n] = s(v)
	}
	out, err := client.GetItem(context.Background(), &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetItem(%s): %v", table, err)
	}
	return out.Item
}

func putItem(t *testing.T, client *awsdynamodb.Client, table string, row map[string]types.AttributeValue) {
	t.Helper()
	if _, err := client.PutItem(context.Background(), &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: row}); err != nil {
		t.Fatalf("PutItem(%s): %v", table, err)
	}
}

// scanAll is every row of the consumer, subscription and customer tables.
func scanAll(t *testing.T, client *awsdynamodb.Client, tables awsconfig.Tables) []map[string]types.AttributeValue {
	t.Helper()
	var rows []map[string]types.AttributeValue
	for _, table := range []string{tables.Consumer, tables.Subscription, tables.Customer} {
		out, err := client.Scan(context.Background(), &awsdynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("Scan(%s): %v", table, err)
		}
		rows = append(rows, out.Items...)
	}
	return rows
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
