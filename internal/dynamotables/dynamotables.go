// Package dynamotables defines, as data, every DynamoDB table egressd uses:
// Storacha's tables exactly as storacha/w3infra's stack creates them, and
// egressd's own billing ledger. internal/awsinit creates and checks tables
// from these definitions and the stores take their index and attribute
// names from here, so the layout is written down once.
//
// It is a package of its own, not part of awsinit, because the stores need
// the layout but not the code that provisions AWS: data here, actions there.
package dynamotables

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table is the layout of one table. Every attribute named in a key is a
// string (S) unless its Type says otherwise.
type Table struct {
	// Storacha is true for a table of Storacha's stack: egressd reads and
	// writes it in place and never creates it with --storacha.
	Storacha bool
	Key      Key
	Indexes  []Index
	// BillingMode and PointInTimeRecovery are how the table is created.
	BillingMode         types.BillingMode
	PointInTimeRecovery bool
}

// Key is a table's or an index's key; Range is zero for a hash key alone.
type Key struct {
	Hash, Range Attribute
}

// Attribute is a key attribute and its type.
type Attribute struct {
	Name string
	Type types.ScalarAttributeType
}

// Index is a global secondary index.
type Index struct {
	Name       string
	Key        Key
	Projection types.ProjectionType
	// NonKeyAttributes are projected by an INCLUDE index, as the stack lists
	// them (w3infra names some of the table's key attributes here too,
	// which DynamoDB accepts and keeps).
	NonKeyAttributes []string
}

// Index returns the table's index of that name.
func (t Table) Index(name string) (Index, bool) {
	i := slices.IndexFunc(t.Indexes, func(ix Index) bool { return ix.Name == name })
	if i < 0 {
		return Index{}, false
	}
	return t.Indexes[i], true
}

// Attributes are the key attributes of the table and of its indexes, each
// once: what CreateTable's AttributeDefinitions must list.
func (t Table) Attributes() []Attribute {
	var attrs []Attribute
	add := func(k Key) {
		for _, a := range []Attribute{k.Hash, k.Range} {
			if a.Name != "" && !slices.ContainsFunc(attrs, func(b Attribute) bool { return b.Name == a.Name }) {
				attrs = append(attrs, a)
			}
		}
	}
	add(t.Key)
	for _, ix := range t.Indexes {
		add(ix.Key)
	}
	return attrs
}

// str and include keep the definitions below short.
func str(name string) Attribute { return Attribute{Name: name, Type: types.ScalarAttributeTypeS} }

func include(name string, key Key, attrs ...string) Index {
	return Index{Name: name, Key: key, Projection: types.ProjectionTypeInclude, NonKeyAttributes: attrs}
}

// storacha is a table as w3infra's stack creates it: SST's Table construct
// (sst 2.x, sst/constructs Table) makes every table PAY_PER_REQUEST with
// point-in-time recovery on, and w3infra overrides neither for these tables.
func storacha(key Key, indexes ...Index) Table {
	return Table{
		Storacha:            true,
		Key:                 key,
		Indexes:             indexes,
		BillingMode:         types.BillingModePayPerRequest,
		PointInTimeRecovery: true,
	}
}
