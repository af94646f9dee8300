package dynamodb_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/revocations"
	"github.com/egressd/egressd/revocations/dynamodb"
	"github.com/egressd/egressd/revocations/revocationstest"
)

func TestConformance(t *testing.T) {
	revocationstest.Run(t, func(t *testing.T) revocations.Store {
		client, table := newTable(t)
		return dynamodb.New(client, table)
	})
}

const (
	revoked = "bafyreihiffu3ivgk7nirr2lfxguvw4obelaswi5zbcrk4exoul45guvzaq"
	space   = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	agent   = "did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9"
	cause1  = "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe"
	cause2  = "bafyreig6gxs53ed27uelraxtu2m5j2lt6sv2rvcacuaetfa72yxjbsngwm"
)

// TestReadsStorachaRows reads a row as w3infra's upload service writes it
// (revoke, and a {cause} map per revoker named by its DID) and checks that
// what egressd writes next to it is the same shape and leaves it alone.
func TestReadsStorachaRows(t *testing.T) {
	ctx := context.Background()
	client, table := newTable(t)
	if _, err := client.PutItem(ctx, &awsdynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"revoke": &types.AttributeValueMemberS{Value: revoked},
			agent:    causeMap(cause1),
		},
	}); err != nil {
		t.Fatal(err)
	}
	store := dynamodb.New(client, table)
	got, err := store.Revocations(ctx, []string{revoked})
	if err != nil {
		t.Fatal(err)
	}
	want := revocations.Revocation{Delegation: revoked, Scope: agent, Cause: cause1}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("Revocations = %v, want [%v]", got, want)
	}

	if err := store.Revoke(ctx, revocations.Revocation{Delegation: revoked, Scope: space, Cause: cause2}); err != nil {
		t.Fatal(err)
	}
	out, err := client.GetItem(ctx, &awsdynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"revoke": &types.AttributeValueMemberS{Value: revoked}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Item) != 3 || causeOf(out.Item[agent]) != cause1 || causeOf(out.Item[space]) != cause2 {
		t.Fatalf("row after Revoke = %v; want revoke, %s: {cause: %s} and %s: {cause: %s}", out.Item, agent, cause1, space, cause2)
	}
}

func newTable(t *testing.T) (*awsdynamodb.Client, string) {
	t.Helper()
	cfg := awstest.Config(t)
	client := awsconfig.NewDynamoDB(cfg)
	tables, err := awsconfig.ParseDynamoDB("dynamodb://" + awstest.Name("revocation") + "-")
	if err != nil {
		t.Fatal(err)
	}
	if err := awsinit.Tables(context.Background(), client, tables, awsinit.Options{}); err != nil {
		t.Fatal(err)
	}
	return client, awsinit.RevocationTable(tables)
}

func causeMap(cause string) types.AttributeValue {
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"cause": &types.AttributeValueMemberS{Value: cause}}}
}

func causeOf(v types.AttributeValue) string {
	m, ok := v.(*types.AttributeValueMemberM)
	if !ok {
		return ""
	}
	s, _ := m.Value["cause"].(*types.AttributeValueMemberS)
	if s == nil {
		return ""
	}
	return s.Value
}
