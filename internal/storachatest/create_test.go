package storachatest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
)

// TestCreateTables creates the six tables on DynamoDB Local and checks that
// each is exactly its definition (point-in-time recovery included where the
// endpoint can report it), and that DeleteTable runs at cleanup.
func TestCreateTables(t *testing.T) {
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3infra") + "-"
	t.Run("create", func(t *testing.T) {
		storachatest.CreateTables(t, client, prefix)
		for _, def := range storachatest.Tables() {
			name := prefix + def.Name
			if d := storachatest.Diff(t, client, name, def); d != "" {
				t.Errorf("table %s differs from w3infra's %s:\n%s", name, def.Source, d)
			}
		}
		// Each fixture row goes in and comes back still a row Storacha
		// writes: the key schema takes it, nothing is added or retyped.
		for table, item := range fixtures(t) {
			ctx := context.Background()
			if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(prefix + table), Item: item}); err != nil {
				t.Fatalf("putting a %s row: %v", table, err)
			}
			def, _ := storachatest.Lookup(table)
			key := map[string]types.AttributeValue{def.Hash.Name: item[def.Hash.Name]}
			if def.Range != nil {
				key[def.Range.Name] = item[def.Range.Name]
			}
			out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(prefix + table), Key: key, ConsistentRead: aws.Bool(true)})
			if err != nil || out.Item == nil {
				t.Fatalf("getting the %s row back: %v", table, err)
			}
			if err := storachatest.CheckWritten(table, out.Item); err != nil {
				t.Errorf("%s row read back: %v", table, err)
			}
		}
	})
	for _, def := range storachatest.Tables() {
		_, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(prefix + def.Name)})
		var missing *types.ResourceNotFoundException
		if !errors.As(err, &missing) {
			t.Errorf("table %s after cleanup: %v, want ResourceNotFoundException", prefix+def.Name, err)
		}
	}
}

// TestDescribeConsumer pins the canonical text of the consumer table, so a
// change to the definitions or to Describe's format is seen here first.
func TestDescribeConsumer(t *testing.T) {
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3infra") + "-"
	def, ok := storachatest.Lookup(storachatest.Consumer)
	if !ok {
		t.Fatal("no consumer definition")
	}
	storachatest.CreateTable(t, client, prefix+"consumer", def)
	want := `key HASH subscription S
key RANGE provider S
attribute consumer S
attribute customer S
attribute provider S
attribute subscription S
billing PAY_PER_REQUEST
stream off
point-in-time-recovery true
gsi consumer key HASH consumer S
gsi consumer projection INCLUDE provider,subscription
gsi consumerV2 key HASH consumer S
gsi consumerV2 projection INCLUDE customer,provider,subscription
gsi customer key HASH customer S
gsi customer projection INCLUDE cause,consumer,provider,subscription
gsi provider key HASH provider S
gsi provider projection INCLUDE consumer
`
	// DynamoDB Local cannot report point-in-time recovery; AWS would.
	got := storachatest.Describe(t, client, prefix+"consumer")
	if !strings.Contains(got, "point-in-time-recovery") {
		want := storachatest.WithoutPointInTimeRecovery(want)
		if got != want {
			t.Errorf("Describe =\n%s\nwant\n%s", got, want)
		}
	} else if got != want {
		t.Errorf("Describe =\n%s\nwant\n%s", got, want)
	}
	if got := def.Canonical(); got != want {
		t.Errorf("Canonical =\n%s\nwant\n%s", got, want)
	}
}

// TestDiffSeesChanges alters tables the ways a careless `aws init` could
// (an index added, a projection narrowed) and checks Diff names each change
// and Describe's before/after texts differ.
func TestDiffSeesChanges(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3infra") + "-"

	events, _ := storachatest.Lookup(storachatest.EgressTrafficEvents)
	storachatest.CreateTable(t, client, prefix+events.Name, events)
	name := prefix + events.Name
	before := storachatest.Describe(t, client, name)
	_, err := client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("unsettled"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("cause"), AttributeType: types.ScalarAttributeTypeS},
		},
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName: aws.String("unsettled"),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("unsettled"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("cause"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	after := storachatest.Describe(t, client, name)
	if before == after {
		t.Fatalf("Describe did not change after adding an index:\n%s", after)
	}
	d := storachatest.Diff(t, client, name, events)
	for _, want := range []string{"+ gsi unsettled key HASH unsettled S", "+ gsi unsettled projection ALL", "+ attribute cause S"} {
		if !strings.Contains(d, want) {
			t.Errorf("Diff lacks %q:\n%s", want, d)
		}
	}

	// A customer table whose account index projects only keys, and with no
	// point-in-time recovery: the shape egressd once created.
	customer, _ := storachatest.Lookup(storachatest.Customer)
	narrow := customer
	narrow.Indexes = []storachatest.Index{{Name: "account", Hash: customer.Indexes[0].Hash, Projection: types.ProjectionTypeKeysOnly}}
	narrow.PointInTimeRecovery = false
	storachatest.CreateTable(t, client, prefix+"customer", narrow)
	d = storachatest.Diff(t, client, prefix+"customer", customer)
	wants := []string{
		"- gsi account projection INCLUDE customer,product",
		"+ gsi account projection KEYS_ONLY",
	}
	if strings.Contains(storachatest.Describe(t, client, prefix+"customer"), "point-in-time-recovery") {
		wants = append(wants, "- point-in-time-recovery true", "+ point-in-time-recovery false")
	}
	for _, want := range wants {
		if !strings.Contains(d, want) {
			t.Errorf("Diff lacks %q:\n%s", want, d)
		}
	}
}
