package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// recordAttempts bounds the transactions one batch tries when concurrent
// transactions on the same rows (the same event from two workers, or the
// same monthly row) cancel it with TransactionConflict.
const recordAttempts = 12

// maxActions is the most actions DynamoDB takes in one TransactWriteItems.
const maxActions = 100

// maxMembers caps a batch at what one transaction holds when its members
// share a space: the members, the monthly ADD, the daily ADD, the month
// item and the batch item. fit splits batches of many spaces further.
const maxMembers = maxActions - 4

// adoptedReason is the reason of an entry adopted from w3infra's pipeline.
const adoptedReason = "recorded by Storacha's own pipeline"

// Record records the events of evs not yet in the ledger, gathered into
// batches by rule, and returns one entry per event and the batches it made.
func (l *Ledger) Record(ctx context.Context, evs []billing.Event, rule billing.BatchRule) ([]billing.Entry, []billing.Batch, error) {
	if rule.Window != 0 {
		if err := billing.CheckWindow(rule.Window); err != nil {
			return nil, nil, fmt.Errorf("recording events: %w", err)
		}
	}
	for _, ev := range evs {
		if err := ev.Validate(); err != nil {
			return nil, nil, fmt.Errorf("recording events: %w", err)
		}
	}
	// Each cause once: a repeat within evs gets the entry of the first.
	var unique []billing.Event
	seen := make(map[string]bool, len(evs))
	for _, ev := range evs {
		if !seen[ev.Cause] {
			seen[ev.Cause] = true
			unique = append(unique, ev)
		}
	}
	stored, byStoracha, err := l.lookup(ctx, unique)
	if err != nil {
		return nil, nil, fmt.Errorf("recording events: reading what the ledger holds: %w", err)
	}
	entries := make(map[string]billing.Entry, len(unique))
	var fresh []billing.Event
	for _, ev := range unique {
		switch item, ok := stored[ev.Cause]; {
		case ok:
			e, err := decodeEntry(item)
			if err != nil {
				return nil, nil, fmt.Errorf("recording %s: reading its entry: %w", ev.Cause, err)
			}
			entries[ev.Cause] = e
		case byStoracha[ev.Cause]:
			e, err := l.adopt(ctx, ev)
			if err != nil {
				return nil, nil, fmt.Errorf("recording %s: %w", ev.Cause, err)
			}
			entries[ev.Cause] = e
		default:
			fresh = append(fresh, ev)
		}
	}
	written, made, err := l.recordBatches(ctx, fresh, rule)
	if err != nil {
		return nil, nil, err
	}
	for cause, e := range written {
		entries[cause] = e
	}
	// The Storacha row of every event still pending: new, or redelivered
	// after a stop before its row was written. Written from the stored
	// entry, so a duplicate carrying other values changes nothing.
	var rows []billing.Event
	for _, ev := range unique {
		if e := entries[ev.Cause]; e.State == billing.Pending {
			rows = append(rows, e.Event)
		}
	}
	if err := l.writeEventRows(ctx, rows); err != nil {
		return nil, nil, fmt.Errorf("recording events: writing Storacha's events rows: %w", err)
	}
	out := make([]billing.Entry, len(evs))
	for i, ev := range evs {
		out[i] = entries[ev.Cause]
	}
	return out, made, nil
}

// lookup reads, consistently, the entries of evs that exist and which of
// evs have a row in Storacha's events table, in one BatchGetItem for up to
// 50 events.
func (l *Ledger) lookup(ctx context.Context, evs []billing.Event) (stored map[string]map[string]types.AttributeValue, byStoracha map[string]bool, err error) {
	stored = make(map[string]map[string]types.AttributeValue)
	byStoracha = make(map[string]bool)
	for chunk := range slices.Chunk(evs, 50) {
		entryKeys := make([]map[string]types.AttributeValue, len(chunk))
		rowKeys := make([]map[string]types.AttributeValue, len(chunk))
		for i, ev := range chunk {
			entryKeys[i] = entryKey(ev.Cause)
			rowKeys[i] = eventKey(ev)
		}
		err := l.batchGet(ctx, map[string]types.KeysAndAttributes{
			l.tables.Ledger: {Keys: entryKeys, ConsistentRead: aws.Bool(true)},
			l.tables.Events: {Keys: rowKeys, ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("sk")},
		}, func(table string, item map[string]types.AttributeValue) {
			if table == l.tables.Ledger {
				stored[stringAttr(item, "cause")] = item
			} else {
				byStoracha[causeOfEventsKey(stringAttr(item, "sk"))] = true
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return stored, byStoracha, nil
}

// adopt records, as reported and a batch of one by itself, an event whose
// row w3infra wrote: Storacha's pipeline counted and billed it already.
func (l *Ledger) adopt(ctx context.Context, ev billing.Event) (billing.Entry, error) {
	item := soloEntryItem(ev, billing.Reported, adoptedReason, l.now())
	_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(l.tables.Ledger),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return l.stored(ctx, ev.Cause, failed.Item)
	}
	if err != nil {
		return billing.Entry{}, fmt.Errorf("adopting Storacha's record of it: %w", err)
	}
	return decodeEntry(item)
}

// recordBatches gathers evs, none of them in the ledger when looked up,
// into batches and records each. It returns the entry of every event (its
// own, or the one another worker recorded meanwhile) and the batches made,
// in the order formed. One customer's batches go one after another, since
// they may share a monthly row; customers go side by side.
func (l *Ledger) recordBatches(ctx context.Context, evs []billing.Event, rule billing.BatchRule) (map[string]billing.Entry, []billing.Batch, error) {
	var formed [][]billing.Event
	for _, fb := range billing.FormBatches(evs, rule, maxMembers) {
		formed = append(formed, fit(fb.Members)...)
	}
	byCustomer := make(map[string][]int)
	var customers []string
	for i, members := range formed {
		c := members[0].Customer
		if _, ok := byCustomer[c]; !ok {
			customers = append(customers, c)
		}
		byCustomer[c] = append(byCustomer[c], i)
	}
	var (
		mu      sync.Mutex
		entries = make(map[string]billing.Entry, len(evs))
		made    = make([][]billing.Batch, len(formed))
	)
	err := parallel(ctx, len(customers), func(ctx context.Context, i int) error {
		for _, j := range byCustomer[customers[i]] {
			es, bs, err := l.recordBatch(ctx, formed[j])
			if err != nil {
				return err
			}
			mu.Lock()
			for _, e := range es {
				entries[e.Cause] = e
			}
			made[j] = bs
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return entries, slices.Concat(made...), nil
}

// fit splits a batch's members, in order, into batches that each fit one
// transaction: a member's entry each, a monthly ADD, a month item and a
// daily ADD per space and day (a day lies in one month), and the batch item.
func fit(members []billing.Event) [][]billing.Event {
	var (
		out    [][]billing.Event
		start  int
		spaces = map[string]bool{}
	)
	for i, ev := range members {
		k := ev.Space + " " + billing.Day(ev.ServedAt)
		n := len(spaces)
		if !spaces[k] {
			n++
		}
		if i > start && (i-start+1)+3*n+1 > maxActions {
			out = append(out, members[start:i])
			start = i
			clear(spaces)
		}
		spaces[k] = true
	}
	return append(out, members[start:])
}

// gather makes the batch of members, as FormBatches would: its ID the
// cause of the first, its timestamp the latest servedAt.
func gather(members []billing.Event) billing.FormedBatch {
	b := billing.Batch{ID: members[0].Cause, Customer: members[0].Customer, Timestamp: members[0].ServedAt.UTC(), State: billing.Pending}
	for _, ev := range members {
		b.Bytes += ev.Bytes
		b.Events++
		if ev.ServedAt.After(b.Timestamp) {
			b.Timestamp = ev.ServedAt.UTC()
		}
	}
	return billing.FormedBatch{Batch: b, Members: members}
}

// recordBatch records members as one batch. Members another worker
// recorded meanwhile are returned as stored and the rest tried again as a
// batch of their own. When a monthly total cannot take the batch, the
// members it can take are recorded as a batch, and each of the others
// alone, refused.
func (l *Ledger) recordBatch(ctx context.Context, members []billing.Event) (entries []billing.Entry, made []billing.Batch, err error) {
	for attempt := 1; len(members) > 0; {
		fb := gather(members)
		res, err := l.write(ctx, fb, "")
		if err != nil {
			return nil, nil, fmt.Errorf("recording batch %s: %w", fb.ID, err)
		}
		switch {
		case res.written:
			return append(entries, res.entries...), append(made, res.batch), nil
		case len(res.stored) > 0:
			// In another worker's batch: take them out and try the rest.
			entries = append(entries, res.stored...)
			members = slices.DeleteFunc(slices.Clone(members), func(ev billing.Event) bool {
				return slices.ContainsFunc(res.stored, func(e billing.Entry) bool { return e.Cause == ev.Cause })
			})
			continue
		case res.overflow != "" && len(members) > 1:
			// The members the totals can take stay a batch; each of the
			// others is recorded alone, on the rule for one event.
			fits, refused, err := l.fitting(ctx, members)
			if err != nil {
				return nil, nil, fmt.Errorf("recording batch %s: %w", fb.ID, err)
			}
			if len(refused) == 0 {
				break // the totals moved since: try again
			}
			parts := [][]billing.Event{fits}
			for _, ev := range refused {
				parts = append(parts, []billing.Event{ev})
			}
			for _, part := range parts {
				es, bs, err := l.recordBatch(ctx, part)
				if err != nil {
					return nil, nil, err
				}
				entries, made = append(entries, es...), append(made, bs...)
			}
			return entries, made, nil
		case res.overflow != "":
			// Alone, and still too much for its month's total: refused.
			res, err = l.write(ctx, fb, res.overflow)
			if err != nil {
				return nil, nil, fmt.Errorf("refusing %s in the monthly totals: %w", fb.ID, err)
			}
			if res.written || len(res.stored) > 0 {
				// New, but settled: the batch is not one to send.
				return append(append(entries, res.entries...), res.stored...), made, nil
			}
		}
		// Cancelled by a concurrent transaction, which is short-lived.
		if attempt == recordAttempts {
			return nil, nil, fmt.Errorf("recording batch %s: %d transactions in a row cancelled by concurrent ones", fb.ID, attempt)
		}
		if err := pause(ctx, attempt); err != nil {
			return nil, nil, fmt.Errorf("recording batch %s: %w", fb.ID, err)
		}
		attempt++
	}
	return entries, made, nil
}

// fitting splits members, in order, into those their monthly totals can
// take, as the totals stand, and those they cannot. Totals only grow, so
// an event refused now would be refused later too.
func (l *Ledger) fitting(ctx context.Context, members []billing.Event) (fits, refused []billing.Event, err error) {
	customer := members[0].Customer
	sums := totals(members, billing.Month)
	room := make(map[string]int64, len(sums))
	keys := make([]map[string]types.AttributeValue, len(sums))
	for i, t := range sums {
		room[t.period+"#"+t.space] = math.MaxInt64
		keys[i] = monthlyKey(customer, t.space, t.period)
	}
	err = l.batchGet(ctx, map[string]types.KeysAndAttributes{
		l.tables.Monthly: {
			Keys: keys, ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String("sk, #bytes"), ExpressionAttributeNames: map[string]string{"#bytes": "bytes"},
		},
	}, func(_ string, row map[string]types.AttributeValue) {
		total, err := numberAttr(row, "bytes")
		if err != nil || total < 0 {
			room[stringAttr(row, "sk")] = -1 // past int64 already: nothing fits
			return
		}
		room[stringAttr(row, "sk")] = math.MaxInt64 - total
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the monthly totals: %w", err)
	}
	for _, ev := range members {
		k := billing.Month(ev.ServedAt) + "#" + ev.Space
		if ev.Bytes <= room[k] {
			room[k] -= ev.Bytes
			fits = append(fits, ev)
		} else {
			refused = append(refused, ev)
		}
	}
	return fits, refused, nil
}

// writeEventRows puts evs' rows in Storacha's events table, 25 a request,
// taking again the writes DynamoDB left unprocessed.
func (l *Ledger) writeEventRows(ctx context.Context, evs []billing.Event) error {
	chunks := slices.Collect(slices.Chunk(evs, 25))
	return parallel(ctx, len(chunks), func(ctx context.Context, i int) error {
		writes := make([]types.WriteRequest, len(chunks[i]))
		for j, ev := range chunks[i] {
			writes[j] = types.WriteRequest{PutRequest: &types.PutRequest{Item: eventRow(ev)}}
		}
		request := map[string][]types.WriteRequest{l.tables.Events: writes}
		for attempt := 1; len(request) > 0; attempt++ {
			out, err := l.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: request})
			if err != nil {
				return err
			}
			request = out.UnprocessedItems
			if len(request) > 0 {
				if err := pause(ctx, attempt); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
