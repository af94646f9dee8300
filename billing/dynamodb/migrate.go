package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// migrateAttempts bounds the tries to migrate one entry that Settle or
// Reject keep changing under the migration.
const migrateAttempts = 5

// MigrateToBatches gives every entry an egressd from before batches wrote a
// batch item of its own (the batch's ID its cause, with the entry's state,
// reason, resend and account), so that Batches lists it and reconciling
// the hours before the upgrade with the sink counts it. Until then such an
// entry is read, settled and rejected as a batch of one all the same; only
// listing needs this. Entries adopted from w3infra's pipeline stay as they are:
// w3infra, not egressd, sent their charges. It scans the ledger table once
// (read units for the whole table) and writes one transaction per entry
// migrated, and may run while workers settle: an entry changed under it is
// read again. It returns how many entries it migrated; running it again
// finds none.
func (l *Ledger) MigrateToBatches(ctx context.Context) (int, error) {
	var migrated atomic.Int64
	p := dynamodb.NewScanPaginator(l.client, &dynamodb.ScanInput{
		TableName:                aws.String(l.tables.Ledger),
		FilterExpression:         aws.String("begins_with(pk, :entry) AND attribute_not_exists(#batch) AND #reason <> :adopted"),
		ExpressionAttributeNames: map[string]string{"#batch": "batch", "#reason": "reason"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":entry":   str("entry#"),
			":adopted": str(adoptedReason),
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return int(migrated.Load()), fmt.Errorf("migrating the ledger to batches: scanning: %w", err)
		}
		err = parallel(ctx, len(page.Items), func(ctx context.Context, i int) error {
			done, err := l.migrate(ctx, page.Items[i])
			if done {
				migrated.Add(1)
			}
			return err
		})
		if err != nil {
			return int(migrated.Load()), fmt.Errorf("migrating the ledger to batches: %w", err)
		}
	}
	return int(migrated.Load()), nil
}

// migrate writes the batch item of an entry from before batches and names
// it in the entry, in one transaction on condition that the entry is as
// read; an entry changed meanwhile is read again. The entry's resend and
// account move to the batch item, which holds them from then on.
func (l *Ledger) migrate(ctx context.Context, entry map[string]types.AttributeValue) (bool, error) {
	for attempt := 1; ; attempt++ {
		b, err := soloBatch(entry)
		if err != nil {
			return false, err
		}
		item := batchItem(b, []billing.Event{{Cause: b.ID}})
		unchanged := "updatedAt = :updatedAt"
		values := map[string]types.AttributeValue{
			":id":     str(b.ID),
			":at":     num(b.Timestamp.UnixMilli()),
			":zero":   num(0),
			":state":  str(string(b.State)),
			":reason": str(b.Reason),
		}
		if v, ok := entry["updatedAt"]; ok {
			values[":updatedAt"] = v
		} else {
			unchanged = "attribute_not_exists(updatedAt)"
		}
		_, err = l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			l.newItem(item),
			{Update: &types.Update{
				TableName:                 aws.String(l.tables.Ledger),
				Key:                       entryKey(b.ID),
				UpdateExpression:          aws.String("SET #batch = :id, batchAt = :at, batchVersion = :zero REMOVE resend, account"),
				ConditionExpression:       aws.String("attribute_not_exists(#batch) AND " + unchanged + " AND #state = :state AND #reason = :reason"),
				ExpressionAttributeNames:  map[string]string{"#batch": "batch", "#state": "state", "#reason": "reason"},
				ExpressionAttributeValues: values,
			}},
		}})
		if err == nil {
			return true, nil
		}
		var cancelled *types.TransactionCanceledException
		if !errors.As(err, &cancelled) {
			return false, fmt.Errorf("entry %s: %w", b.ID, err)
		}
		if attempt == migrateAttempts {
			return false, fmt.Errorf("entry %s: changed under the migration %d times in a row", b.ID, attempt)
		}
		if entry, err = l.get(ctx, entryKey(b.ID)); err != nil {
			return false, fmt.Errorf("entry %s: %w", b.ID, err)
		}
		if stringAttr(entry, "batch") != "" {
			return false, nil // another run migrated it
		}
		if err := pause(ctx, attempt); err != nil {
			return false, err
		}
	}
}
