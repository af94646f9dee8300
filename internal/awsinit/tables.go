package awsinit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/dynamotables"
)

// Index names, kept here for the callers that take them from this package;
// the layout itself is internal/dynamotables.
const (
	ConsumerIndex       = dynamotables.ConsumerIndex
	AccountIndex        = dynamotables.CustomerAccountIndex
	EventsCustomerIndex = dynamotables.EventsCustomerIndex
	EventsSpaceIndex    = dynamotables.EventsSpaceIndex
	MonthlySpaceIndex   = dynamotables.MonthlySpaceIndex
)

const (
	tableActiveTimeout   = 5 * time.Minute
	tableActivePollDelay = time.Second
)

// table is one table Tables handles.
type table struct {
	role   string // its parameter in the --tables URL: consumer, ..., ledger
	name   string
	layout dynamotables.Table
	// queried are the indexes egressd's stores query: a table that exists
	// must have them (with their keys and at least their projection).
	queried []string
}

// tables pairs each name in t with its layout.
func tables(t awsconfig.Tables) []table {
	return []table{
		{"consumer", t.Consumer, dynamotables.Consumer(), []string{dynamotables.ConsumerIndex}},
		// The provider index serves listing a provider's customers.
		{"subscription", t.Subscription, dynamotables.Subscription(), []string{dynamotables.SubscriptionProviderIndex}},
		{"customer", t.Customer, dynamotables.Customer(), []string{dynamotables.CustomerAccountIndex}},
		{"revocation", RevocationTable(t), dynamotables.Revocation(), nil},
		{"events", t.Events, dynamotables.Events(), nil},
		{"monthly", t.Monthly, dynamotables.Monthly(), nil},
		{"ledger", t.Ledger, dynamotables.Ledger(), []string{dynamotables.LedgerStateIndex}},
	}
}

// RevocationTable names the revocation table of t: t.Revocation, or, for a
// Tables built without one, the consumer table's name with "revocation" in
// place of its trailing "consumer" (as Storacha names them side by side),
// else that name followed by "-revocation".
func RevocationTable(t awsconfig.Tables) string {
	if t.Revocation != "" {
		return t.Revocation
	}
	if prefix, ok := strings.CutSuffix(t.Consumer, awsconfig.ConsumerTable); ok {
		return prefix + awsconfig.RevocationTable
	}
	return t.Consumer + "-" + awsconfig.RevocationTable
}

// TableResult says what InitTables did with one table.
type TableResult struct {
	Role    string // the table's parameter in the --tables URL: consumer, subscription, ..., ledger
	Name    string
	Created bool // false: the table existed and was checked
}

// Tables is InitTables without the report.
func Tables(ctx context.Context, client *dynamodb.Client, t awsconfig.Tables, opts Options) error {
	_, err := InitTables(ctx, client, t, opts)
	return err
}

// InitTables checks every table of t that exists and creates, from
// internal/dynamotables, every one that does not, then waits until all are
// active. It never changes a table that exists: one that lacks what egressd
// reads through is an error. With opts.Storacha, Storacha's tables must
// exist: only egressd's ledger is created. Every table is checked before
// any is created, so a refusal leaves the account as it was. It reports on
// each table, in the order of the --tables URL's parameters.
func InitTables(ctx context.Context, client *dynamodb.Client, t awsconfig.Tables, opts Options) ([]TableResult, error) {
	opts = opts.withDefaults()
	all := tables(t)
	results := make([]TableResult, len(all))
	for i, tb := range all {
		results[i] = TableResult{Role: tb.role, Name: tb.name}
	}
	// The tables are independent: each phase handles them side by side.
	each := func(f func(i int, tb table) error) error {
		errs := make([]error, len(all))
		var wg sync.WaitGroup
		for i, tb := range all {
			wg.Go(func() { errs[i] = f(i, tb) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	exists := make([]bool, len(all))
	err := each(func(i int, tb table) error {
		var err error
		exists[i], err = checkTable(ctx, client, tb, opts)
		return err
	})
	if err != nil {
		return results, err
	}
	err = each(func(i int, tb table) error {
		if exists[i] {
			return readyTable(ctx, client, tb, opts)
		}
		var err error
		results[i].Created, err = createTable(ctx, client, tb, opts)
		return err
	})
	return results, err
}

// checkTable reports whether the table exists, and if it does, that it is
// as egressd needs (see check). A table that does not exist is an error
// only for Storacha's tables with opts.Storacha.
func checkTable(ctx context.Context, client *dynamodb.Client, tb table, opts Options) (exists bool, err error) {
	if tb.name == "" {
		return false, fmt.Errorf("no name for the %s table", tb.role)
	}
	desc, err := describe(ctx, client, tb.name)
	var missing *types.ResourceNotFoundException
	switch {
	case errors.As(err, &missing) && opts.Storacha && tb.layout.Storacha:
		return false, fmt.Errorf("--storacha: table %s does not exist: create Storacha's tables with their own stack (storacha/w3infra); egressd creates only its own", tb.name)
	case errors.As(err, &missing):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, check(tb, desc)
}

// readyTable waits until a table that exists is active (another run may be
// creating it) and says it was checked.
func readyTable(ctx context.Context, client *dynamodb.Client, tb table, opts Options) error {
	if err := waitActive(ctx, client, tb.name); err != nil {
		return err
	}
	opts.Log.Info("table checked", "table", tb.name, "role", tb.role)
	warnWithoutRecovery(ctx, client, tb, opts)
	return nil
}

// createTable creates the table from its layout, waits until it is active
// and turns on point-in-time recovery. A table created meanwhile, by another
// run, is checked instead (created is then false).
func createTable(ctx context.Context, client *dynamodb.Client, tb table, opts Options) (created bool, err error) {
	_, err = client.CreateTable(ctx, createInput(tb.name, tb.layout))
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		desc, err := describe(ctx, client, tb.name)
		if err != nil {
			return false, err
		}
		if err := check(tb, desc); err != nil {
			return false, err
		}
		return false, readyTable(ctx, client, tb, opts)
	case err != nil:
		return false, fmt.Errorf("creating table %s: %w", tb.name, err)
	}
	if err := waitActive(ctx, client, tb.name); err != nil {
		return true, err
	}
	opts.Log.Info("table created", "table", tb.name, "role", tb.role)
	if tb.layout.PointInTimeRecovery {
		if err := enableRecovery(ctx, client, tb.name, opts); err != nil {
			return true, err
		}
	}
	return true, nil
}

func waitActive(ctx context.Context, client *dynamodb.Client, name string) error {
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = tableActivePollDelay
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, tableActiveTimeout); err != nil {
		return fmt.Errorf("waiting for table %s to become active: %w", name, err)
	}
	return nil
}

func describe(ctx context.Context, client *dynamodb.Client, name string) (*types.TableDescription, error) {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", name, err)
	}
	if out.Table == nil {
		return nil, fmt.Errorf("reading table %s: no description returned", name)
	}
	return out.Table, nil
}

// createInput is the CreateTable request for layout l under name.
func createInput(name string, l dynamotables.Table) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: l.BillingMode,
		KeySchema:   keySchema(l.Key),
	}
	for _, a := range l.Attributes() {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name), AttributeType: a.Type,
		})
	}
	for _, ix := range l.Indexes {
		p := &types.Projection{ProjectionType: ix.Projection}
		if ix.Projection == types.ProjectionTypeInclude {
			p.NonKeyAttributes = ix.NonKeyAttributes
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name), KeySchema: keySchema(ix.Key), Projection: p,
		})
	}
	return in
}

func keySchema(k dynamotables.Key) []types.KeySchemaElement {
	ks := []types.KeySchemaElement{{AttributeName: aws.String(k.Hash.Name), KeyType: types.KeyTypeHash}}
	if k.Range.Name != "" {
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(k.Range.Name), KeyType: types.KeyTypeRange})
	}
	return ks
}
