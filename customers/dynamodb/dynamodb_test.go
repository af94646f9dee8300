package dynamodb_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/customers/customerstest"
	"github.com/egressd/egressd/customers/dynamodb"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
)

const (
	service = "did:web:egress.example.com"
	alias   = "did:web:legacy.example.com"
	// Two spaces and their subscription IDs as w3infra computes them,
	// (await CBOR.write({ consumer })).cid.toString() with @ucanto/core.
	space1        = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	space1Sub     = "bafyreihiffu3ivgk7nirr2lfxguvw4obelaswi5zbcrk4exoul45guvzaq"
	space2        = "did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9"
	space2Sub     = "bafyreig6gxs53ed27uelraxtu2m5j2lt6sv2rvcacuaetfa72yxjbsngwm"
	customerAlice = "did:mailto:example.com:alice"
	customerBob   = "did:mailto:example.com:bob"
)

func TestConformance(t *testing.T) {
	customerstest.Run(t, func(t *testing.T) customers.Store {
		client, tables := newTables(t)
		return dynamodb.New(client, dynamodb.Tables{Consumer: tables.Consumer, Customer: tables.Customer, Subscription: tables.Subscription})
	})
}

func TestSubscriptionIDMatchesW3infra(t *testing.T) {
	for space, want := range map[string]string{space1: space1Sub, space2: space2Sub} {
		got, err := dynamodb.SubscriptionID(space)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("SubscriptionID(%s) = %s, want %s (w3infra's)", space, got, want)
		}
	}
}

// TestReadsStorachaRows writes rows the way w3infra does (a subscription ID
// from before it was derived from the space, a cause, a product) and reads
// them back through the store.
func TestReadsStorachaRows(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	put(t, client, tables.Consumer, map[string]string{
		"subscription": "bafyreigk5ya2ihfqwzmuufmgsnsfkhaaebxnhsxuhyqdsurx5mbaoyezbu", // CID of {customer}
		"provider":     alias,
		"consumer":     space1,
		"customer":     customerAlice,
		"cause":        "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe",
		"insertedAt":   "2024-03-01T10:00:00.000Z",
		"updatedAt":    "2024-03-01T10:00:00.000Z",
	})
	put(t, client, tables.Customer, map[string]string{
		"customer":   customerAlice,
		"account":    "stripe:cus_alice",
		"product":    "did:web:starter.web3.storage",
		"cause":      "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe",
		"insertedAt": "2024-03-01T10:00:00.000Z",
		"updatedAt":  "2024-03-01T10:00:00.000Z",
	})
	store := dynamodb.New(client, dynamodb.Tables{Consumer: tables.Consumer, Customer: tables.Customer, Subscription: tables.Subscription})

	if got, err := store.Customer(ctx, space1, []string{service, alias}); err != nil || got != customerAlice {
		t.Fatalf("Customer(space1, [service, alias]) = %q, %v; want %q", got, err, customerAlice)
	}
	if _, err := store.Customer(ctx, space1, []string{service}); !errors.Is(err, customers.ErrNotFound) {
		t.Errorf("Customer(space1, [service]) = %v, want ErrNotFound: the row is under the alias", err)
	}
	if got, err := store.Account(ctx, customerAlice); err != nil || got != "stripe:cus_alice" {
		t.Fatalf("Account(alice) = %q, %v; want stripe:cus_alice", got, err)
	}

	// Storacha never moves a space, and neither does Provision: not to Bob,
	// not under another provider; for Alice again it is already done.
	for _, p := range []struct{ customer, provider string }{{customerBob, alias}, {customerBob, service}, {customerAlice, service}} {
		err := store.Provision(ctx, space1, p.customer, p.provider)
		var held *customers.AlreadyProvisionedError
		if !errors.As(err, &held) || held.Customer != customerAlice || held.Provider != alias {
			t.Errorf("Provision(space1, %s, %s) = %v; want the space held by alice under the alias", p.customer, p.provider, err)
		}
	}
	if err := store.Provision(ctx, space1, customerAlice, alias); err != nil {
		t.Errorf("Provision(space1, alice, alias), as Storacha did = %v; want a no-op", err)
	}
	if got, err := store.Customer(ctx, space1, []string{service, alias}); err != nil || got != customerAlice {
		t.Fatalf("Customer(space1) after refused provisionings = %q, %v; want %q", got, err, customerAlice)
	}
	if n := count(t, client, tables.Consumer); n != 1 {
		t.Errorf("consumer table holds %d rows, want Storacha's one", n)
	}

	// Whatever order the index returns rows in, the row at the derived
	// subscription ID wins over old ones: with old rows on either side of it.
	if err := store.Provision(ctx, space2, customerBob, alias); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"a", "m", "z", "0", "legacy-1", "legacy-2"} {
		put(t, client, tables.Consumer, map[string]string{
			"subscription": sub,
			"provider":     alias,
			"consumer":     space2,
			"customer":     "did:mailto:example.com:carol",
		})
	}
	if got, err := store.Customer(ctx, space2, []string{alias}); err != nil || got != customerBob {
		t.Fatalf("Customer(space2, [alias]) with several old rows = %q, %v; want %q", got, err, customerBob)
	}
	if err := store.SetAccount(ctx, customerAlice, "stripe:cus_alice2"); err != nil {
		t.Fatal(err)
	}
	alice := get(t, client, tables.Customer, map[string]string{"customer": customerAlice})
	if alice["product"] != "did:web:starter.web3.storage" || alice["insertedAt"] != "2024-03-01T10:00:00.000Z" || alice["account"] != "stripe:cus_alice2" {
		t.Errorf("customer row after SetAccount = %v; want product and insertedAt kept, account changed", alice)
	}
}

// TestWritesStorachaRows checks the rows Provision and SetAccount write are
// the ones w3infra would: keyed by the derived subscription ID, with ISO 8601
// timestamps, and no empty account (the account index cannot hold one).
// storacha_test.go checks every attribute.
func TestWritesStorachaRows(t *testing.T) {
	ctx := context.Background()
	client, tables := newTables(t)
	store := dynamodb.New(client, dynamodb.Tables{Consumer: tables.Consumer, Customer: tables.Customer, Subscription: tables.Subscription})
	if err := store.Provision(ctx, space2, customerBob, service); err != nil {
		t.Fatal(err)
	}
	row := get(t, client, tables.Consumer, map[string]string{"subscription": space2Sub, "provider": service})
	if row == nil {
		t.Fatalf("no consumer row at subscription %s, provider %s", space2Sub, service)
	}
	iso := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	if row["consumer"] != space2 || row["customer"] != customerBob || !iso.MatchString(row["insertedAt"]) {
		t.Errorf("consumer row = %v", row)
	}
	if err := store.SetAccount(ctx, customerBob, "stripe:cus_bob"); err != nil {
		t.Fatal(err)
	}
	if err := store.SetAccount(ctx, customerBob, ""); err != nil {
		t.Fatal(err)
	}
	bob := get(t, client, tables.Customer, map[string]string{"customer": customerBob})
	if _, has := bob["account"]; has {
		t.Errorf("customer row after clearing the account = %v; want no account attribute", bob)
	}
	// The account index (sparse) finds customers by account.
	if err := store.SetAccount(ctx, customerBob, "stripe:cus_bob"); err != nil {
		t.Fatal(err)
	}
	out, err := client.Query(ctx, &awsdynamodb.QueryInput{
		TableName:                 aws.String(tables.Customer),
		IndexName:                 aws.String(awsinit.AccountIndex),
		KeyConditionExpression:    aws.String("account = :a"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberS{Value: "stripe:cus_bob"}},
	})
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("querying the account index: %d items, %v; want 1", len(out.Items), err)
	}
}

// TestKeysOnlyIndex reads through an index that does not project customer,
// as w3infra's older "consumer" index does.
func TestKeysOnlyIndex(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Config(t)
	client := awsconfig.NewDynamoDB(cfg)
	name := awstest.Name("consumer")
	_, err := client.CreateTable(ctx, &awsdynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("subscription"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("provider"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("consumer"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("subscription"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("provider"), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String("consumer"),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("consumer"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	put(t, client, name, map[string]string{
		"subscription": "legacy-subscription",
		"provider":     service,
		"consumer":     space1,
		"customer":     customerAlice,
	})
	store := dynamodb.New(client, dynamodb.Tables{Consumer: name, Customer: name + "-customer", ConsumerIndex: "consumer"})
	if got, err := store.Customer(ctx, space1, []string{service}); err != nil || got != customerAlice {
		t.Fatalf("Customer = %q, %v; want %q", got, err, customerAlice)
	}
}

func newTables(t *testing.T) (*awsdynamodb.Client, awsconfig.Tables) {
	t.Helper()
	cfg := awstest.Config(t)
	client := awsconfig.NewDynamoDB(cfg)
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("t") + "-")
	if err != nil {
		t.Fatal(err)
	}
	if err := awsinit.Tables(context.Background(), client, tables, awsinit.Options{}); err != nil {
		t.Fatal(err)
	}
	return client, tables
}

// count is the number of rows in table.
func count(t *testing.T, client *awsdynamodb.Client, table string) int {
	t.Helper()
	out, err := client.Scan(context.Background(), &awsdynamodb.ScanInput{TableName: aws.String(table), Select: types.SelectCount, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("Scan(%s): %v", table, err)
	}
	return int(out.Count)
}

func put(t *testing.T, client *awsdynamodb.Client, table string, attrs map[string]string) {
	t.Helper()
	item := map[string]types.AttributeValue{}
	for k, v := range attrs {
		item[k] = &types.AttributeValueMemberS{Value: v}
	}
	if _, err := client.PutItem(context.Background(), &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatalf("PutItem(%s): %v", table, err)
	}
}

// get reads the item at key as strings; nil when there is none.
func get(t *testing.T, client *awsdynamodb.Client, table string, key map[string]string) map[string]string {
	t.Helper()
	k := map[string]types.AttributeValue{}
	for n, v := range key {
		k[n] = &types.AttributeValueMemberS{Value: v}
	}
	out, err := client.GetItem(context.Background(), &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetItem(%s): %v", table, err)
	}
	if out.Item == nil {
		return nil
	}
	row := map[string]string{}
	for n, v := range out.Item {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			row[n] = s.Value
		}
	}
	return row
}
