package awsinit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/dynamotables"
)

// check reports how an existing table differs from what egressd needs of
// it: the table's key, and the indexes egressd queries with their keys and
// at least the attributes egressd reads from them. Other indexes, wider
// projections and settings are the owner's business.
func check(tb table, d *types.TableDescription) error {
	var diffs []string
	if got, want := describeKey(d.KeySchema, d.AttributeDefinitions), formatKey(tb.layout.Key); got != want {
		diffs = append(diffs, fmt.Sprintf("its key is %s, egressd needs %s", got, want))
	}
	for _, name := range tb.queried {
		want, ok := tb.layout.Index(name)
		if !ok {
			return fmt.Errorf("checking table %s: egressd queries an index %s its layout lacks", tb.name, name)
		}
		i := slices.IndexFunc(d.GlobalSecondaryIndexes, func(g types.GlobalSecondaryIndexDescription) bool {
			return aws.ToString(g.IndexName) == name
		})
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("it has no global secondary index %s (%s), which egressd queries", name, formatKey(want.Key)))
			continue
		}
		got := d.GlobalSecondaryIndexes[i]
		if gotKey, wantKey := describeKey(got.KeySchema, d.AttributeDefinitions), formatKey(want.Key); gotKey != wantKey {
			diffs = append(diffs, fmt.Sprintf("its index %s has the key %s, egressd needs %s", name, gotKey, wantKey))
		}
		if lacking := unprojected(got.Projection, want, d.KeySchema, got.KeySchema); len(lacking) > 0 {
			diffs = append(diffs, fmt.Sprintf("its index %s does not project %s, which egressd reads from it", name, strings.Join(lacking, ", ")))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("table %s (%s) is not laid out as egressd needs: %s; egressd never changes a table it did not create: %s",
		tb.name, tb.role, strings.Join(diffs, "; "), remedy(tb))
}

// remedy says what the operator can do about a table that check refused.
func remedy(tb table) string {
	if tb.layout.Storacha {
		return "point --tables at Storacha's tables as their stack (storacha/w3infra) creates them"
	}
	return "point --tables at another table name, and aws init creates it"
}

// unprojected lists the attributes that the index want projects and the
// index projection p does not. The table's and the index's keys (keys) are
// always projected.
func unprojected(p *types.Projection, want dynamotables.Index, keys ...[]types.KeySchemaElement) []string {
	if p == nil || p.ProjectionType == types.ProjectionTypeAll {
		return nil // a missing projection is DynamoDB's default, ALL
	}
	if want.Projection == types.ProjectionTypeAll {
		return []string{"every attribute (ALL)"}
	}
	projected := func(a string) bool {
		for _, ks := range keys {
			if slices.ContainsFunc(ks, func(e types.KeySchemaElement) bool { return aws.ToString(e.AttributeName) == a }) {
				return true
			}
		}
		return p.ProjectionType == types.ProjectionTypeInclude && slices.Contains(p.NonKeyAttributes, a)
	}
	var lacking []string
	for _, a := range want.NonKeyAttributes {
		if !projected(a) {
			lacking = append(lacking, a)
		}
	}
	return lacking
}

// describeKey formats a described key schema as formatKey does.
func describeKey(ks []types.KeySchemaElement, attrs []types.AttributeDefinition) string {
	typeOf := func(name string) types.ScalarAttributeType {
		i := slices.IndexFunc(attrs, func(a types.AttributeDefinition) bool { return aws.ToString(a.AttributeName) == name })
		if i < 0 {
			return "?"
		}
		return attrs[i].AttributeType
	}
	var k dynamotables.Key
	for _, e := range ks {
		a := dynamotables.Attribute{Name: aws.ToString(e.AttributeName), Type: typeOf(aws.ToString(e.AttributeName))}
		switch e.KeyType {
		case types.KeyTypeHash:
			k.Hash = a
		case types.KeyTypeRange:
			k.Range = a
		}
	}
	return formatKey(k)
}

// formatKey writes a key as "pk S HASH, sk S RANGE".
func formatKey(k dynamotables.Key) string {
	s := fmt.Sprintf("%s %s HASH", k.Hash.Name, k.Hash.Type)
	if k.Range.Name != "" {
		s += fmt.Sprintf(", %s %s RANGE", k.Range.Name, k.Range.Type)
	}
	return s
}
