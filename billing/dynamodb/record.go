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
// share a space: the members, the monthly ADD, the month item and the
// batch item. fit splits batches of many spaces further.
const maxMembers = maxActions - 3

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

// batchGet reads the keys of request (100 at most), taking again the keys
// DynamoDB left unprocessed, and calls found with each item read.
func (l *Ledger) batchGet(ctx context.Context, request map[string]types.KeysAndAttributes, found func(table string, item map[string]types.AttributeValue)) error {
	for attempt := 1; len(request) > 0; attempt++ {
		out, err := l.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
		if err != nil {
			return err
		}
		for table, items := range out.Responses {
			for _, item := range items {
				found(table, item)
			}
		}
		request = out.UnprocessedKeys
		if len(request) > 0 {
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		}
	}
	return nil
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
// transaction: a member's entry each, a monthly ADD and a month item per
// space and month, and the batch item.
func fit(members []billing.Event) [][]billing.Event {
	var (
		out    [][]billing.Event
		start  int
		spaces = map[string]bool{}
	)
	for i, ev := range members {
		k := ev.Space + " " + billing.Month(ev.ServedAt)
		n := len(spaces)
		if !spaces[k] {
			n++
		}
		if i > start && (i-start+1)+2*n+1 > maxActions {
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
	sums := totals(members)
	room := make(map[string]int64, len(sums))
	keys := make([]map[string]types.AttributeValue, len(sums))
	for i, t := range sums {
		room[t.month+"#"+t.space] = math.MaxInt64
		keys[i] = monthlyKey(customer, t.space, t.month)
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

// spaceTotal is what a batch adds to one monthly row.
type spaceTotal struct {
	space, month string
	bytes        int64
	events       int64
}

// totals sums members by space and month, in order of first appearance.
func totals(members []billing.Event) []spaceTotal {
	var out []spaceTotal
	for _, ev := range members {
		month := billing.Month(ev.ServedAt)
		i := slices.IndexFunc(out, func(t spaceTotal) bool { return t.space == ev.Space && t.month == month })
		if i < 0 {
			i = len(out)
			out = append(out, spaceTotal{space: ev.Space, month: month})
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
	sums := totals(fb.Members)
	firstMonthly := len(actions)
	for _, t := range sums {
		actions = append(actions, l.addToMonthly(b.Customer, t, refusal != ""))
	}
	var registering []string
	for _, t := range sums {
		key := t.month + " " + b.Customer + " " + t.space
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
				billing.ReasonTotalOverflow, t.month, t.space, total, t.bytes, int64(math.MaxInt64))
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
			Key:                       monthlyKey(customer, t.space, t.month),
			UpdateExpression:          aws.String("ADD eventCount :n"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(t.events)},
		}}
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName:        aws.String(l.tables.Monthly),
		Key:              monthlyKey(customer, t.space, t.month),
		UpdateExpression: aws.String("SET #space = :space, #month = :month ADD #bytes :bytes, eventCount :n"),
		// DynamoDB's 38-digit numbers would hold a larger sum, but every
		// reader (this package, w3infra's JavaScript) takes it as a 64-bit
		// or double number: keep totals in int64.
		ConditionExpression:      aws.String("attribute_not_exists(#bytes) OR #bytes <= :room"),
		ExpressionAttributeNames: map[string]string{"#space": "space", "#month": "month", "#bytes": "bytes"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":space": str(t.space),
			":month": str(t.month),
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
			"pk": str("month#" + t.month),
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

// get reads the ledger item at key with a consistent read;
// billing.ErrNotFound when there is none.
func (l *Ledger) get(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.tables.Ledger),
		Key:            key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, billing.ErrNotFound
	}
	return out.Item, nil
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
