package storachatest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Describe returns a canonical text of the live table name's schema: its
// keys, attribute definitions, billing mode, stream, point-in-time recovery,
// and every secondary index with its keys and sorted projection, one fact a
// line in a fixed order. Two calls return the same text exactly when none of
// those changed, so a test can take one before and one after and compare.
func Describe(t testing.TB, client *dynamodb.Client, name string) string {
	t.Helper()
	ctx := context.Background()
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatalf("storachatest: describing table %s: %v", name, err)
	}
	backups, err := client.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(name)})
	if err != nil && !unknownOperation(err) {
		t.Fatalf("storachatest: describing the backups of table %s: %v", name, err)
	}
	var pitr *bool // unknown
	if err == nil {
		on := false
		if d := backups.ContinuousBackupsDescription; d != nil && d.PointInTimeRecoveryDescription != nil {
			on = d.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus == types.PointInTimeRecoveryStatusEnabled
		}
		pitr = &on
	}
	return describeLive(out.Table, pitr)
}

// Canonical returns the text Describe gives for a table created exactly as
// def says.
func (def Table) Canonical() string {
	in := def.createInput(def.Name)
	d := &types.TableDescription{
		KeySchema:            in.KeySchema,
		AttributeDefinitions: in.AttributeDefinitions,
		BillingModeSummary:   &types.BillingModeSummary{BillingMode: def.BillingMode},
	}
	for _, g := range in.GlobalSecondaryIndexes {
		d.GlobalSecondaryIndexes = append(d.GlobalSecondaryIndexes, types.GlobalSecondaryIndexDescription{
			IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection,
		})
	}
	return describeLive(d, &def.PointInTimeRecovery)
}

// Diff compares the live table name with def and returns the differences,
// one line each ("- " what w3infra defines, "+ " what the table has), or ""
// when the table is exactly as w3infra's stack would create it. Where the
// endpoint cannot tell point-in-time recovery (DynamoDB Local), that one
// setting is not compared.
func Diff(t testing.TB, client *dynamodb.Client, name string, def Table) string {
	t.Helper()
	got := Describe(t, client, name)
	want := def.Canonical()
	if !strings.Contains(got, pitrLine) {
		want = WithoutPointInTimeRecovery(want)
	}
	return diffLines(want, got)
}

// pitrLine begins the point-in-time recovery line of a canonical text.
const pitrLine = "point-in-time-recovery "

// WithoutPointInTimeRecovery returns the canonical text s without its
// point-in-time recovery line, to compare a definition with a table on an
// endpoint that cannot report the setting.
func WithoutPointInTimeRecovery(s string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(l, pitrLine) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// describeLive renders d in the canonical form.
// A nil pitr leaves the point-in-time recovery line out.
func describeLive(d *types.TableDescription, pitr *bool) string {
	types_ := map[string]types.ScalarAttributeType{}
	var lines, attrs []string
	for _, a := range d.AttributeDefinitions {
		types_[aws.ToString(a.AttributeName)] = a.AttributeType
		attrs = append(attrs, fmt.Sprintf("attribute %s %s", aws.ToString(a.AttributeName), a.AttributeType))
	}
	keys := func(prefix string, ks []types.KeySchemaElement) {
		ks = slices.Clone(ks)
		// HASH sorts before RANGE.
		slices.SortFunc(ks, func(a, b types.KeySchemaElement) int { return strings.Compare(string(a.KeyType), string(b.KeyType)) })
		for _, k := range ks {
			n := aws.ToString(k.AttributeName)
			lines = append(lines, fmt.Sprintf("%skey %s %s %s", prefix, k.KeyType, n, types_[n]))
		}
	}
	keys("", d.KeySchema)
	slices.Sort(attrs)
	lines = append(lines, attrs...)

	billing := types.BillingModeProvisioned // what DynamoDB means when it gives no summary
	if d.BillingModeSummary != nil && d.BillingModeSummary.BillingMode != "" {
		billing = d.BillingModeSummary.BillingMode
	}
	lines = append(lines, "billing "+string(billing))
	stream := "off"
	if s := d.StreamSpecification; s != nil && aws.ToBool(s.StreamEnabled) {
		stream = string(s.StreamViewType)
	}
	lines = append(lines, "stream "+stream)
	if pitr != nil {
		lines = append(lines, fmt.Sprintf("%s%t", pitrLine, *pitr))
	}

	type index struct {
		kind, name string
		keys       []types.KeySchemaElement
		projection *types.Projection
	}
	var indexes []index
	for _, g := range d.GlobalSecondaryIndexes {
		indexes = append(indexes, index{"gsi", aws.ToString(g.IndexName), g.KeySchema, g.Projection})
	}
	for _, l := range d.LocalSecondaryIndexes {
		indexes = append(indexes, index{"lsi", aws.ToString(l.IndexName), l.KeySchema, l.Projection})
	}
	slices.SortFunc(indexes, func(a, b index) int {
		return strings.Compare(a.kind+" "+a.name, b.kind+" "+b.name)
	})
	for _, ix := range indexes {
		prefix := ix.kind + " " + ix.name + " "
		keys(prefix, ix.keys)
		projection := "ALL" // DynamoDB's default when none is given
		if p := ix.projection; p != nil && p.ProjectionType != "" {
			projection = string(p.ProjectionType)
			if len(p.NonKeyAttributes) > 0 {
				nonKey := slices.Clone(p.NonKeyAttributes)
				slices.Sort(nonKey)
				projection += " " + strings.Join(nonKey, ",")
			}
		}
		lines = append(lines, prefix+"projection "+projection)
	}
	return strings.Join(lines, "\n") + "\n"
}

// diffLines lists the lines only in want ("- ") and only in got ("+ ").
// Canonical texts hold each fact once, so a set difference reads as a diff.
func diffLines(want, got string) string {
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("(- w3infra %s, + live table)\n%s\n", w3infraCommit[:12], strings.Join(out, "\n"))
}
