package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// One batch's transaction, as Record writes it: its members' entries, its
// batch item, its monthly and daily ADDs and month items, and what a cancellation
// of it means.

// written is what one try of a batch's transaction did.
type written struct {
	// written: the batch and its members are in; entries and batch as stored.
	written bool
	entries []billing.Entry
	batch   billing.Batch
	// stored are members already in the ledger, as stored; the transaction
	// wrote nothing.
	stored []billing.Entry
	// overflow is the reason to refuse the batch's events with: a monthly
	// total cannot take the batch's bytes.
	overflow string
	// None of the above: cancelled by a concurrent transaction.
}

// spaceTotal is what a batch adds to one space in one period: a month (the
// monthly row) or a day (the daily item).
type spaceTotal struct {
	space, period string
	bytes, events int64
}

// totals sums members by space and period (billing.Month or billing.Day of
// their servedAt), in order of first appearance.
func totals(members []billing.Event, period func(time.Time) string) []spaceTotal {
	var out []spaceTotal
	for _, ev := range members {
		p := period(ev.ServedAt)
		i := slices.IndexFunc(out, func(t spaceTotal) bool { return t.space == ev.Space && t.period == p })
		if i < 0 {
			i = len(out)
			out = append(out, spaceTotal{space: ev.Space, period: p})
		}
		out[i].bytes += ev.Bytes
		out[i].events++
	}
	return out
}

// write tries fb's transaction once: its members' entries, its batch item,
// its monthly ADDs and the month items not yet registered. With a refusal,
// the batch (of one event) goes in failed with that reason, and the
// monthly row counts the event without its bytes.
func (l *Ledger) write(ctx context.Context, fb billing.FormedBatch, refusal string) (written, error) {
	now := l.now()
	b := fb.Batch
	b.State, b.Reason, b.Resend, b.RecordedAt, b.UpdatedAt = billing.Pending, "", 0, now, now
	if refusal != "" {
		b.State, b.Reason = billing.Failed, refusal
	}
	items := make([]map[string]types.AttributeValue, len(fb.Members))
	actions := make([]types.TransactWriteItem, 0, len(fb.Members)+4)
	for i, ev := range fb.Members {
		items[i] = entryItem(ev, b)
		actions = append(actions, l.newItem(items[i]))
	}
	batch := batchItem(b, fb.Members)
	actions = append(actions, l.newItem(batch))
	sums := totals(fb.Members, billing.Month)
	firstMonthly := len(actions)
	for _, t := range sums {
		actions = append(actions, l.addToMonthly(b.Customer, t, refusal != ""))
	}
	for _, t := range totals(fb.Members, billing.Day) {
		actions = append(actions, l.addToDaily(b.Customer, t, refusal != ""))
	}
	var registering []string
	for _, t := range sums {
		key := t.period + " " + b.Customer + " " + t.space
		if !l.registered.Contains(key) {
			actions = append(actions, l.registerMonth(b.Customer, t))
			registering = append(registering, key)
		}
	}
	_, err := l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: actions})
	if err == nil {
		for _, key := range registering {
			l.registered.Add(key, struct{}{})
		}
		res := written{written: true, entries: make([]billing.Entry, len(items))}
		for i, item := range items {
			if res.entries[i], err = decodeEntry(item); err != nil {
				return written{}, err
			}
		}
		res.batch, err = decodeBatch(batch)
		return res, err
	}
	var cancelled *types.TransactionCanceledException
	if !errors.As(err, &cancelled) {
		return written{}, err
	}
	var (
		res      written
		conflict bool
	)
	for i, r := range cancelled.CancellationReasons {
		switch code := aws.ToString(r.Code); {
		case code == "TransactionConflict":
			conflict = true
		case code != "ConditionalCheckFailed":
		case i < len(fb.Members):
			// A duplicate: the totals already hold it, so only read.
			e, err := l.stored(ctx, fb.Members[i].Cause, r.Item)
			if err != nil {
				return written{}, err
			}
			res.stored = append(res.stored, e)
		case i >= firstMonthly && i < firstMonthly+len(sums) && refusal == "":
			t := sums[i-firstMonthly]
			total := "nothing"
			if v, ok := r.Item["bytes"].(*types.AttributeValueMemberN); ok {
				total = v.Value
			}
			res.overflow = fmt.Sprintf("%s: the %s total of space %s holds %s bytes, and %d more would pass %d",
				billing.ReasonTotalOverflow, t.period, t.space, total, t.bytes, int64(math.MaxInt64))
		case i >= firstMonthly && i < firstMonthly+len(sums):
			// The refusal found no monthly row: what it saw is gone; try again.
			conflict = true
		}
	}
	switch {
	case len(res.stored) > 0:
		return written{stored: res.stored}, nil
	case res.overflow != "":
		return written{overflow: res.overflow}, nil
	case conflict:
		return written{}, nil
	}
	return written{}, err
}

// newItem puts a ledger item on condition that it is new (for an entry,
// the dedup); a failed condition hands back the stored item.
func (l *Ledger) newItem(item map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                           aws.String(l.tables.Ledger),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
}

// addToMonthly adds t to its monthly row, as w3infra's increment does,
// unless the total would pass int64. A refused event counts as an event
// of the month without its bytes, so that Count (which derives reported
// entries from eventCount) stays right.
func (l *Ledger) addToMonthly(customer string, t spaceTotal, refused bool) types.TransactWriteItem {
	if refused {
		return types.TransactWriteItem{Update: &types.Update{
			TableName:                 aws.String(l.tables.Monthly),
			Key:                       monthlyKey(customer, t.space, t.period),
			UpdateExpression:          aws.String("ADD eventCount :n"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(t.events)},
		}}
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName:        aws.String(l.tables.Monthly),
		Key:              monthlyKey(customer, t.space, t.period),
		UpdateExpression: aws.String("SET #space = :space, #month = :month ADD #bytes :bytes, eventCount :n"),
		// DynamoDB's 38-digit numbers would hold a larger sum, but every
		// reader (this package, w3infra's JavaScript) takes it as a 64-bit
		// or double number: keep totals in int64.
		ConditionExpression:      aws.String("attribute_not_exists(#bytes) OR #bytes <= :room"),
		ExpressionAttributeNames: map[string]string{"#space": "space", "#month": "month", "#bytes": "bytes"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":space": str(t.space),
			":month": str(t.period),
			":bytes": num(t.bytes),
			":n":     num(t.events),
			":room":  num(math.MaxInt64 - t.bytes),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
}

// registerMonth registers the customer and space of t in its month (a
// plain SET, so repeating it costs nothing but the write).
func (l *Ledger) registerMonth(customer string, t spaceTotal) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(l.tables.Ledger),
		Key: map[string]types.AttributeValue{
			"pk": str("month#" + t.period),
			"sk": str(customer + "#" + t.space),
		},
		UpdateExpression:          aws.String("SET customer = :customer, #space = :space"),
		ExpressionAttributeNames:  map[string]string{"#space": "space"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":customer": str(customer), ":space": str(t.space)},
	}}
}

// stored decodes the entry a failed put condition returned, reading it when
// the cancellation did not carry it.
func (l *Ledger) stored(ctx context.Context, cause string, item map[string]types.AttributeValue) (billing.Entry, error) {
	if len(item) == 0 {
		var err error
		if item, err = l.get(ctx, entryKey(cause)); err != nil {
			return billing.Entry{}, fmt.Errorf("reading the existing entry of %s: %w", cause, err)
		}
	}
	e, err := decodeEntry(item)
	if err != nil {
		return billing.Entry{}, fmt.Errorf("reading the existing entry of %s: %w", cause, err)
	}
	return e, nil
}
