package storachatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// activeTimeout bounds the wait for a new table to become ACTIVE; DynamoDB
// Local is immediate, AWS takes seconds.
const activeTimeout = 2 * time.Minute

// CreateTables creates the six tables of Tables, named prefix+name (e.g.
// prefix "test-w3infra-" gives "test-w3infra-consumer", the way a w3infra
// stage names them), exactly as w3infra's stack defines them: the same keys,
// GSIs and projections, PAY_PER_REQUEST, and point-in-time recovery on. It
// waits until each is ACTIVE and deletes them when the test ends.
func CreateTables(t testing.TB, client *dynamodb.Client, prefix string) {
	t.Helper()
	for _, def := range Tables() {
		CreateTable(t, client, prefix+def.Name, def)
	}
}

// CreateTable creates one table named name with def's schema and settings,
// waits until it is ACTIVE and deletes it when the test ends.
func CreateTable(t testing.TB, client *dynamodb.Client, name string, def Table) {
	t.Helper()
	ctx := context.Background()
	if _, err := client.CreateTable(ctx, def.createInput(name)); err != nil {
		t.Fatalf("storachatest: creating table %s (w3infra %s): %v", name, def.Name, err)
	}
	t.Cleanup(func() {
		_, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var missing *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &missing) {
			t.Errorf("storachatest: deleting table %s: %v", name, err)
		}
	})
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, activeTimeout); err != nil {
		t.Fatalf("storachatest: waiting for table %s to be active: %v", name, err)
	}
	if def.PointInTimeRecovery {
		_, err := client.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName: aws.String(name),
			PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: aws.Bool(true),
			},
		})
		// DynamoDB Local (3.3.1, the one scripts/services.sh runs) does not
		// implement the continuous-backups operations at all: it answers
		// UnknownOperationException. Only this call is skipped there; on
		// AWS a refusal fails the test.
		if err != nil && !unknownOperation(err) {
			t.Fatalf("storachatest: enabling point-in-time recovery on %s: %v", name, err)
		}
	}
}

// unknownOperation reports whether err is the endpoint saying it does not
// implement the operation at all, as DynamoDB Local does for the
// continuous-backups calls.
func unknownOperation(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException"
}

// createInput is the CreateTable request for def under name.
func (def Table) createInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          def.BillingMode,
		KeySchema:            keySchema(def.Hash, def.Range),
		AttributeDefinitions: attributeDefinitions(def),
	}
	for _, ix := range def.Indexes {
		gsi := types.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  keySchema(ix.Hash, ix.Range),
			Projection: &types.Projection{ProjectionType: ix.Projection},
		}
		if len(ix.NonKey) > 0 {
			gsi.Projection.NonKeyAttributes = append([]string(nil), ix.NonKey...)
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, gsi)
	}
	return in
}

func keySchema(hash Key, sort *Key) []types.KeySchemaElement {
	ks := []types.KeySchemaElement{{AttributeName: aws.String(hash.Name), KeyType: types.KeyTypeHash}}
	if sort != nil {
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(sort.Name), KeyType: types.KeyTypeRange})
	}
	return ks
}

// attributeDefinitions are the key attributes of the table and its indexes,
// each once: DynamoDB accepts no others.
func attributeDefinitions(def Table) []types.AttributeDefinition {
	seen := map[string]bool{}
	var out []types.AttributeDefinition
	add := func(k *Key) {
		if k == nil || seen[k.Name] {
			return
		}
		seen[k.Name] = true
		out = append(out, types.AttributeDefinition{AttributeName: aws.String(k.Name), AttributeType: k.Type})
	}
	add(&def.Hash)
	add(def.Range)
	for _, ix := range def.Indexes {
		add(&ix.Hash)
		add(ix.Range)
	}
	return out
}
