package awsinit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
)

// Index names, as Storacha's w3infra names them.
const (
	ConsumerIndex        = "consumerV2"
	AccountIndex         = "account"
	EventsCustomerIndex  = "customer"
	EventsSpaceIndex     = "space"
	MonthlySpaceIndex    = "space-month-index"
	tableActiveTimeout   = 5 * time.Minute
	tableActivePollDelay = time.Second
)

// table is the shape of one table: string keys, optional secondary indexes.
type table struct {
	name          string
	hash, sortKey string
	indexes       []index
}

// index is a GSI; include nil projects only the keys.
type index struct {
	name          string
	hash, sortKey string
	include       []string
}

// layouts are the tables of the package comment.
func layouts(t awsconfig.Tables) []table {
	return []table{
		{name: t.Consumer, hash: "subscription", sortKey: "provider", indexes: []index{
			{name: ConsumerIndex, hash: "consumer", include: []string{"customer"}},
		}},
		{name: t.Customer, hash: "customer", indexes: []index{
			{name: AccountIndex, hash: "account"},
		}},
		{name: t.Events, hash: "pk", sortKey: "sk", indexes: []index{
			{name: EventsCustomerIndex, hash: "customer", sortKey: "sk", include: []string{"space", "resource", "bytes", "cause", "servedAt"}},
			{name: EventsSpaceIndex, hash: "space", sortKey: "servedAt", include: []string{"resource", "bytes"}},
		}},
		{name: t.Monthly, hash: "pk", sortKey: "sk", indexes: []index{
			{name: MonthlySpaceIndex, hash: "space", sortKey: "month", include: []string{"bytes", "eventCount"}},
		}},
	}
}

// Tables creates the customer, consumer and egress tables that do not exist
// yet and waits until all are active. An existing table must have the keys
// and indexes egressd reads through; it is not changed.
func Tables(ctx context.Context, client *dynamodb.Client, t awsconfig.Tables, opts Options) error {
	opts = opts.withDefaults()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, tb := range layouts(t) {
		wg.Go(func() {
			if err := ensureTable(ctx, client, tb, opts); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func ensureTable(ctx context.Context, client *dynamodb.Client, tb table, opts Options) error {
	_, err := client.CreateTable(ctx, tb.createInput())
	var inUse *types.ResourceInUseException
	switch {
	case err == nil:
		opts.Log.Info("creating table", "table", tb.name)
	case errors.As(err, &inUse):
		desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tb.name)})
		if err != nil {
			return fmt.Errorf("checking table %s: %w", tb.name, err)
		}
		if err := tb.check(desc.Table); err != nil {
			return err
		}
		opts.Log.Info("table exists", "table", tb.name)
	default:
		return fmt.Errorf("creating table %s: %w", tb.name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = tableActivePollDelay
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tb.name)}, tableActiveTimeout); err != nil {
		return fmt.Errorf("waiting for table %s to become active: %w", tb.name, err)
	}
	return nil
}

func (tb table) createInput() *dynamodb.CreateTableInput {
	var attrs []string
	addAttr := func(name string) {
		if name != "" && !slices.Contains(attrs, name) {
			attrs = append(attrs, name)
		}
	}
	addAttr(tb.hash)
	addAttr(tb.sortKey)
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(tb.name),
		BillingMode: types.BillingModePayPerRequest,
		KeySchema:   keySchema(tb.hash, tb.sortKey),
	}
	for _, ix := range tb.indexes {
		addAttr(ix.hash)
		addAttr(ix.sortKey)
		projection := &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}
		if len(ix.include) > 0 {
			projection = &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: ix.include}
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.name),
			KeySchema:  keySchema(ix.hash, ix.sortKey),
			Projection: projection,
		})
	}
	for _, a := range attrs {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a),
			AttributeType: types.ScalarAttributeTypeS,
		})
	}
	return in
}

func keySchema(hash, sortKey string) []types.KeySchemaElement {
	ks := []types.KeySchemaElement{{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash}}
	if sortKey != "" {
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(sortKey), KeyType: types.KeyTypeRange})
	}
	return ks
}

// check reports how an existing table differs from the layout egressd reads
// (keys and index keys; projections and extra indexes are the owner's business).
func (tb table) check(d *types.TableDescription) error {
	if d == nil {
		return fmt.Errorf("checking table %s: no description returned", tb.name)
	}
	if got, want := describeKeys(d.KeySchema), describeKeys(keySchema(tb.hash, tb.sortKey)); got != want {
		return fmt.Errorf("table %s exists with key %s; egressd needs %s", tb.name, got, want)
	}
	for _, ix := range tb.indexes {
		i := slices.IndexFunc(d.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
			return aws.ToString(g.IndexName) == ix.name
		})
		if i < 0 {
			return fmt.Errorf("table %s exists without the global secondary index %s (%s) that egressd queries; add it",
				tb.name, ix.name, describeKeys(keySchema(ix.hash, ix.sortKey)))
		}
		if got, want := describeKeys(d.GlobalSecondaryIndexes[i].KeySchema), describeKeys(keySchema(ix.hash, ix.sortKey)); got != want {
			return fmt.Errorf("table %s: index %s has key %s; egressd needs %s", tb.name, ix.name, got, want)
		}
	}
	return nil
}

func describeKeys(ks []types.KeySchemaElement) string {
	var hash, sortKey string
	for _, k := range ks {
		switch k.KeyType {
		case types.KeyTypeHash:
			hash = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			sortKey = aws.ToString(k.AttributeName)
		}
	}
	if sortKey == "" {
		return hash + " (HASH)"
	}
	return hash + " (HASH), " + sortKey + " (RANGE)"
}
