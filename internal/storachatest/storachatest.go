// Package storachatest knows Storacha's DynamoDB tables the way Storacha's
// own stack (storacha/w3infra) defines them and the rules its code applies
// to their rows, so egressd's tests can check that egressd runs on those
// tables in place: creating them exactly as w3infra does (CreateTables),
// proving a schema did not change (Describe, Diff), and proving every row
// egressd writes is one Storacha's decoders accept (CheckRow,
// CheckNoExtraAttributes, CheckWritten).
//
// It is for tests only: no non-test code may import it (a test of this
// package checks that).
package storachatest

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Names of the six tables, as w3infra's stacks name them (the deployed table
// is "<stage>-w3infra-<name>").
const (
	Consumer             = "consumer"
	Subscription         = "subscription"
	Customer             = "customer"
	Revocation           = "revocation"
	EgressTrafficEvents  = "egress-traffic-events"
	EgressTrafficMonthly = "egress-traffic-monthly"
)

// Key is one key attribute of a table or an index.
type Key struct {
	Name string
	Type types.ScalarAttributeType
}

// Index is a global secondary index.
type Index struct {
	Name  string
	Hash  Key
	Range *Key // nil when the index has no sort key
	// Projection is INCLUDE when w3infra lists the projected attributes
	// (SST turns a list into INCLUDE), ALL when it lists none.
	Projection types.ProjectionType
	NonKey     []string // the listed attributes, in w3infra's order
}

// Table is one table as w3infra's stack creates it.
type Table struct {
	Name    string // w3infra's name for it, e.g. "consumer"
	Source  string // the w3infra file that defines it
	Hash    Key
	Range   *Key // nil when the table has no sort key
	Indexes []Index
	// BillingMode is PAY_PER_REQUEST for all six: SST's Table construct
	// sets it and w3infra does not override it.
	BillingMode types.BillingMode
	// PointInTimeRecovery is true for all six: SST's Table construct
	// enables it and w3infra does not override it.
	PointInTimeRecovery bool
}

// Lookup returns the definition of the table named name (one of the
// constants above).
func Lookup(name string) (Table, bool) {
	tables := Tables()
	i := slices.IndexFunc(tables, func(t Table) bool { return t.Name == name })
	if i < 0 {
		return Table{}, false
	}
	return tables[i], true
}
