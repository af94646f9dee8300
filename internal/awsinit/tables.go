package awsinit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
)

// Index names, as Storacha's w3infra names them.
const (
	ConsumerIndex       = "consumerV2"
	AccountIndex        = "account"
	EventsCustomerIndex = "customer"
	EventsSpaceIndex    = "space"
	MonthlySpaceIndex   = "space-month-index"
)

// EventsUnsettledIndex is egressd's own index on the events table: the
// billing ledger's entries that Stripe has not accepted yet (see
// billing/dynamodb).
const EventsUnsettledIndex = "unsettled"

const (
	tableActiveTimeout   = 5 * time.Minute
	tableActivePollDelay = time.Second
)

// table is the shape of one table: string keys, optional secondary indexes.
type table struct {
	name          string
	hash, sortKey string
	indexes       []index
}

// index is a GSI; include nil projects only the keys, all projects every
// attribute. egressd's own indexes (owned) are added to a table that exists
// without them; an index of Storacha's layout is only checked.
type index struct {
	name          string
	hash, sortKey string
	include       []string
	all           bool
	owned         bool
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
			{name: EventsUnsettledIndex, hash: "unsettled", sortKey: "cause", all: true, owned: true},
		}},
		{name: t.Monthly, hash: "pk", sortKey: "sk", indexes: []index{
			{name: MonthlySpaceIndex, hash: "space", sortKey: "month", include: []string{"bytes", "eventCount"}},
		}},
		{name: RevocationTable(t), hash: "revoke"},
	}
}

// RevocationTable names the revocation table that goes with the tables t.
// Storacha keeps it next to its consumer table (<stage>-w3infra-revocation
// beside <stage>-w3infra-consumer), so it is the consumer table's name with
// "revocation" in place of its trailing "consumer": dynamodb://prod-w3infra-
// shares the revocations of Storacha's upload service, and a consumer table
// named otherwise gets "<name>-revocation".
//
// awsconfig.Tables has no field for it (a revocation= parameter of the
// --tables URL would go there); this one rule serves `aws init` and the
// stores until it has.
func RevocationTable(t awsconfig.Tables) string {
	if prefix, ok := strings.CutSuffix(t.Consumer, awsconfig.ConsumerTable); ok {
		return prefix + "revocation"
	}
	return t.Consumer + "-revocation"
}

// Tables creates the customer, consumer, egress and revocation tables that do
// not exist yet and waits until all are active. An existing table must have
// the keys and indexes egressd reads through; it is not changed.
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
		if err := addOwnedIndexes(ctx, client, tb, desc.Table, opts); err != nil {
			return err
		}
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
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ix.create())
	}
	in.AttributeDefinitions = stringAttributes(attrs)
	return in
}

func (ix index) create() types.GlobalSecondaryIndex {
	projection := &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}
	switch {
	case ix.all:
		projection = &types.Projection{ProjectionType: types.ProjectionTypeAll}
	case len(ix.include) > 0:
		projection = &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: ix.include}
	}
	return types.GlobalSecondaryIndex{
		IndexName:  aws.String(ix.name),
		KeySchema:  keySchema(ix.hash, ix.sortKey),
		Projection: projection,
	}
}

func stringAttributes(names []string) []types.AttributeDefinition {
	var defs []types.AttributeDefinition
	for _, a := range names {
		defs = append(defs, types.AttributeDefinition{AttributeName: aws.String(a), AttributeType: types.ScalarAttributeTypeS})
	}
	return defs
}

// addOwnedIndexes adds egressd's own indexes to a table that exists without
// them (Storacha's egress-traffic-events, say) and waits until they are
// active. It changes no row: the indexes are sparse, holding only rows that
// egressd writes with their key attribute.
func addOwnedIndexes(ctx context.Context, client *dynamodb.Client, tb table, d *types.TableDescription, opts Options) error {
	for _, ix := range tb.indexes {
		if !ix.owned || hasIndex(d, ix.name) {
			continue
		}
		var attrs []string
		for _, a := range []string{ix.hash, ix.sortKey} {
			if a != "" {
				attrs = append(attrs, a)
			}
		}
		create := ix.create()
		_, err := client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
			TableName:            aws.String(tb.name),
			AttributeDefinitions: stringAttributes(attrs),
			GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
				IndexName:  create.IndexName,
				KeySchema:  create.KeySchema,
				Projection: create.Projection,
			}}},
		})
		if err != nil {
			return fmt.Errorf("adding index %s to table %s: %w", ix.name, tb.name, err)
		}
		opts.Log.Info("adding index", "table", tb.name, "index", ix.name)
		if err := waitIndexActive(ctx, client, tb.name, ix.name); err != nil {
			return err
		}
	}
	return nil
}

func hasIndex(d *types.TableDescription, name string) bool {
	return slices.ContainsFunc(d.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
		return aws.ToString(g.IndexName) == name
	})
}

// waitIndexActive polls until the index has been built (DynamoDB backfills
// it from the table first).
func waitIndexActive(ctx context.Context, client *dynamodb.Client, table, name string) error {
	ctx, cancel := context.WithTimeout(ctx, tableActiveTimeout)
	defer cancel()
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("waiting for index %s of table %s: %w", name, table, err)
		}
		for _, g := range out.Table.GlobalSecondaryIndexes {
			if aws.ToString(g.IndexName) == name && g.IndexStatus == types.IndexStatusActive {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %s of table %s to become active: %w", name, table, ctx.Err())
		case <-time.After(tableActivePollDelay):
		}
	}
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
		if ix.owned && !hasIndex(d, ix.name) {
			continue // addOwnedIndexes adds it
		}
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
