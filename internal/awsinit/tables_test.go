package awsinit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/storachatest"
)

// The layouts these tests expect come from internal/storachatest (Storacha's
// tables, written down independently of internal/dynamotables) and from
// ledgerLayout below, so a mistake in egressd's definitions fails here.

// ledgerLayout is egressd's own ledger table as billing/dynamodb expects it.
func ledgerLayout() storachatest.Table {
	s := dbtypes.ScalarAttributeTypeS
	return storachatest.Table{
		Name:  "egressd-ledger",
		Hash:  storachatest.Key{Name: "pk", Type: s},
		Range: &storachatest.Key{Name: "sk", Type: s},
		Indexes: []storachatest.Index{{
			Name:       "state",
			Hash:       storachatest.Key{Name: "stateKey", Type: s},
			Range:      &storachatest.Key{Name: "stateSort", Type: s},
			Projection: dbtypes.ProjectionTypeAll,
		}},
		BillingMode:         dbtypes.BillingModePayPerRequest,
		PointInTimeRecovery: true,
	}
}

// TestCreatedTablesAreStorachas: without --storacha, on a prefix with no
// tables, every table is created exactly as Storacha's stack creates it
// (every index, every projection, billing mode, point-in-time recovery
// where the server can tell), and the ledger as egressd's store expects it.
func TestCreatedTablesAreStorachas(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("fresh") + "-"
	tables := parseTables(t, "dynamodb://"+prefix)
	deleteTablesAtEnd(t, client, tables)
	var log bytes.Buffer
	results, err := awsinit.InitTables(ctx, client, tables, awsinit.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	for _, r := range results {
		if r.Created {
			created = append(created, r.Name)
		}
	}
	want := []string{prefix + "consumer", prefix + "subscription", prefix + "customer", prefix + "revocation",
		prefix + "egress-traffic-events", prefix + "egress-traffic-monthly", prefix + "egressd-ledger"}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	for _, def := range append(storachatest.Tables(), ledgerLayout()) {
		if d := storachatest.Diff(t, client, prefix+def.Name, def); d != "" {
			t.Errorf("table %s differs from %s:\n%s", prefix+def.Name, def.Source, d)
		}
	}
	// Point-in-time recovery: on, or the server said it cannot (DynamoDB
	// Local); Diff compared it wherever the server reports it.
	for _, name := range want {
		on := strings.Contains(log.String(), `msg="point-in-time recovery enabled" table=`+name+"\n")
		unsupported := strings.Contains(log.String(), `msg="point-in-time recovery could not be enabled: this DynamoDB server does not support it" table=`+name+"\n")
		if !on && !unsupported {
			t.Errorf("nothing logged about point-in-time recovery of %s; log:\n%s", name, log.String())
		}
	}
}

// TestStorachaTablesCheckedNotChanged: on tables made as Storacha's stack
// makes them, --storacha checks them, creates only the ledger, and leaves
// every schema as it was; a second run creates nothing.
func TestStorachaTablesCheckedNotChanged(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("w3infra") + "-"
	storachatest.CreateTables(t, client, prefix)
	tables := parseTables(t, "dynamodb://"+prefix)
	deleteTablesAtEnd(t, client, tables)
	before := describeStoracha(t, client, prefix)

	for run := 1; run <= 2; run++ {
		results, err := awsinit.InitTables(ctx, client, tables, awsinit.Options{Storacha: true})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, r := range results {
			if wantCreated := r.Role == "ledger" && run == 1; r.Created != wantCreated {
				t.Errorf("run %d: table %s (%s) created = %v, want %v", run, r.Name, r.Role, r.Created, wantCreated)
			}
		}
	}
	after := describeStoracha(t, client, prefix)
	for name, was := range before {
		if after[name] != was {
			t.Errorf("aws init --storacha changed table %s:\nbefore:\n%s\nafter:\n%s", name, was, after[name])
		}
	}
	if d := storachatest.Diff(t, client, tables.Ledger, ledgerLayout()); d != "" {
		t.Errorf("ledger table %s:\n%s", tables.Ledger, d)
	}
}

// TestStorachaTableNotAsNeeded: a Storacha table with another key or
// without an index egressd queries fails aws init, with or without
// --storacha, naming the table and the difference, and nothing changes:
// no table is created, no schema altered.
func TestStorachaTableNotAsNeeded(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	s := dbtypes.ScalarAttributeTypeS
	for _, tc := range []struct {
		name    string
		table   string // which of Storacha's tables is made otherwise
		change  func(*storachatest.Table)
		wantErr string
	}{
		{"consumer without consumerV2", storachatest.Consumer, dropIndex("consumerV2"),
			"it has no global secondary index consumerV2 (consumer S HASH)"},
		{"subscription without provider", storachatest.Subscription, dropIndex("provider"),
			"it has no global secondary index provider (provider S HASH)"},
		{"customer account keys only", storachatest.Customer, func(d *storachatest.Table) {
			d.Indexes[0].Projection, d.Indexes[0].NonKey = dbtypes.ProjectionTypeKeysOnly, nil
		}, "its index account does not project product"},
		{"events keyed otherwise", storachatest.EgressTrafficEvents, func(d *storachatest.Table) {
			d.Range = &storachatest.Key{Name: "servedAt", Type: s}
		}, "its key is pk S HASH, servedAt S RANGE, egressd needs pk S HASH, sk S RANGE"},
		{"monthly without sort key", storachatest.EgressTrafficMonthly, func(d *storachatest.Table) {
			d.Range = nil
		}, "its key is pk S HASH, egressd needs pk S HASH, sk S RANGE"},
		{"revocation keyed by number", storachatest.Revocation, func(d *storachatest.Table) {
			d.Hash.Type = dbtypes.ScalarAttributeTypeN
		}, "its key is revoke N HASH, egressd needs revoke S HASH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := awstest.Name("other") + "-"
			for _, def := range storachatest.Tables() {
				if def.Name == tc.table {
					tc.change(&def)
				}
				storachatest.CreateTable(t, client, prefix+def.Name, def)
			}
			tables := parseTables(t, "dynamodb://"+prefix)
			deleteTablesAtEnd(t, client, tables)
			before := describeStoracha(t, client, prefix)
			for _, storacha := range []bool{true, false} {
				_, err := awsinit.InitTables(ctx, client, tables, awsinit.Options{Storacha: storacha})
				if err == nil {
					t.Fatalf("storacha=%v: aws init passed", storacha)
				}
				for _, want := range []string{"table " + prefix + tc.table + " ", tc.wantErr, "egressd never changes a table it did not create"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("storacha=%v: error %q does not say %q", storacha, err, want)
					}
				}
				if exists(t, client, tables.Ledger) {
					t.Fatalf("storacha=%v: the ledger table was created though aws init failed", storacha)
				}
			}
			after := describeStoracha(t, client, prefix)
			for name, was := range before {
				if after[name] != was {
					t.Errorf("table %s changed:\nbefore:\n%s\nafter:\n%s", name, was, after[name])
				}
			}
		})
	}
}

// TestStorachaTableMissing: with --storacha, a Storacha table that does
// not exist is an error naming it, and nothing is created.
func TestStorachaTableMissing(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	prefix := awstest.Name("partial") + "-"
	for _, def := range storachatest.Tables() {
		if def.Name != storachatest.Subscription {
			storachatest.CreateTable(t, client, prefix+def.Name, def)
		}
	}
	tables := parseTables(t, "dynamodb://"+prefix)
	deleteTablesAtEnd(t, client, tables)
	_, err := awsinit.InitTables(ctx, client, tables, awsinit.Options{Storacha: true})
	want := "--storacha: table " + tables.Subscription + " does not exist: create Storacha's tables with their own stack"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("aws init --storacha without the subscription table = %v, want an error saying %q", err, want)
	}
	if strings.Count(err.Error(), "does not exist") != 1 {
		t.Errorf("error %q names tables that exist", err)
	}
	for _, name := range []string{tables.Subscription, tables.Ledger} {
		if exists(t, client, name) {
			t.Errorf("table %s was created", name)
		}
	}
}

// TestLedgerNotAsNeeded: egressd's own table is checked too when it exists.
func TestLedgerNotAsNeeded(t *testing.T) {
	ctx := context.Background()
	client := awsconfig.NewDynamoDB(awstest.Config(t))
	tables := parseTables(t, "dynamodb://"+awstest.Name("ledger")+"-")
	deleteTablesAtEnd(t, client, tables)
	ledger := ledgerLayout()
	ledger.Indexes[0].Projection = dbtypes.ProjectionTypeKeysOnly
	storachatest.CreateTable(t, client, tables.Ledger, ledger)
	_, err := awsinit.InitTables(ctx, client, tables, awsinit.Options{})
	want := "table " + tables.Ledger + " (ledger) is not laid out as egressd needs: its index state does not project every attribute (ALL)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("aws init over a ledger with a keys-only state index = %v, want %q", err, want)
	}
	if exists(t, client, tables.Consumer) {
		t.Error("aws init created tables though it failed")
	}
}

func parseTables(t *testing.T, raw string) awsconfig.Tables {
	t.Helper()
	tables, err := awsconfig.ParseDynamoDB(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func dropIndex(name string) func(*storachatest.Table) {
	return func(d *storachatest.Table) {
		d.Indexes = slices.DeleteFunc(d.Indexes, func(ix storachatest.Index) bool { return ix.Name == name })
	}
}

// describeStoracha describes Storacha's six tables under prefix, by name.
func describeStoracha(t *testing.T, client *dynamodb.Client, prefix string) map[string]string {
	t.Helper()
	d := map[string]string{}
	for _, def := range storachatest.Tables() {
		if exists(t, client, prefix+def.Name) {
			d[prefix+def.Name] = storachatest.Describe(t, client, prefix+def.Name)
		}
	}
	return d
}

func exists(t *testing.T, client *dynamodb.Client, name string) bool {
	t.Helper()
	_, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var missing *dbtypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		return false
	}
	if err != nil {
		t.Fatalf("table %s: %v", name, err)
	}
	return true
}
