package dynamodb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// Daily totals live in egressd's own ledger table, never in Storacha's:
// one item per customer, space and UTC day, pk "daily#<customer>", sk
// "<space>#<YYYY-MM-DD>", added to in the transaction that adds to the
// monthly row. So a space's year is one range read of one partition.

func dailyPK(customer string) string { return "daily#" + customer }

// addToDaily adds t to its daily item. A refused event counts without its
// bytes, as on the monthly row; a day never holds more than its month, so
// the monthly row's overflow condition covers it.
func (l *Ledger) addToDaily(customer string, t spaceTotal, refused bool) types.TransactWriteItem {
	bytes := t.bytes
	if refused {
		bytes = 0
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(l.tables.Ledger),
		Key: map[string]types.AttributeValue{
			"pk": str(dailyPK(customer)),
			"sk": str(t.space + "#" + t.period),
		},
		UpdateExpression:         aws.String("SET #space = :space, #day = :day ADD #bytes :bytes, eventCount :n"),
		ExpressionAttributeNames: map[string]string{"#space": "space", "#day": "day", "#bytes": "bytes"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":space": str(t.space),
			":day":   str(t.period),
			":bytes": num(bytes),
			":n":     num(t.events),
		},
	}}
}

// Daily reads the customer's daily totals: one range read per listed
// space, or the customer's partition filtered to the days.
func (l *Ledger) Daily(ctx context.Context, f billing.DailyFilter) ([]billing.DailyUsage, error) {
	if f.Customer == "" {
		return nil, fmt.Errorf("daily totals: a customer is required")
	}
	from, last := billing.Day(f.From), billing.Day(f.To.AddDate(0, 0, -1))
	var items []map[string]types.AttributeValue
	if len(f.Spaces) > 0 {
		for _, space := range f.Spaces {
			got, err := l.query(ctx, &dynamodb.QueryInput{
				TableName:              aws.String(l.tables.Ledger),
				KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :from AND :last"),
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":pk":   str(dailyPK(f.Customer)),
					":from": str(space + "#" + from),
					":last": str(space + "#" + last),
				},
			})
			if err != nil {
				return nil, fmt.Errorf("reading the daily totals of %s: %w", space, err)
			}
			items = append(items, got...)
		}
	} else {
		got, err := l.query(ctx, &dynamodb.QueryInput{
			TableName:                aws.String(l.tables.Ledger),
			KeyConditionExpression:   aws.String("pk = :pk"),
			FilterExpression:         aws.String("#day BETWEEN :from AND :last"),
			ExpressionAttributeNames: map[string]string{"#day": "day"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":   str(dailyPK(f.Customer)),
				":from": str(from),
				":last": str(last),
			},
		})
		if err != nil {
			return nil, fmt.Errorf("reading the daily totals of %s: %w", f.Customer, err)
		}
		items = got
	}
	out := make([]billing.DailyUsage, 0, len(items))
	for _, item := range items {
		d := billing.DailyUsage{Customer: f.Customer, Space: stringAttr(item, "space"), Day: stringAttr(item, "day")}
		var err error
		if d.Bytes, err = numberAttr(item, "bytes"); err != nil {
			return nil, err
		}
		if d.Events, err = numberAttr(item, "eventCount"); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b billing.DailyUsage) int {
		if c := strings.Compare(a.Space, b.Space); c != 0 {
			return c
		}
		return strings.Compare(a.Day, b.Day)
	})
	return out, nil
}
