// Package dynamodb is the billing ledger on DynamoDB, in tables laid out as
// Storacha's w3infra egress-traffic-events and egress-traffic-monthly, so the
// reports that read those tables keep working when egressd writes them.
//
// Events table, one row per event ever recorded (w3infra's attributes first):
//
//	pk          "<space>#<resource>"                 (table HASH key)
//	sk          "<servedAt>#<cause>"                 (table RANGE key)
//	space, customer, resource, cause
//	servedAt    ISO 8601 UTC with milliseconds, as JavaScript's toISOString
//	bytes       N
//	state       pending | reported | unbillable | failed  (egressd's)
//	reason      why unbillable or failed, else ""         (egressd's)
//	recordedAt, updatedAt   ISO 8601                       (egressd's)
//	unsettled   "<state>#<shard>" while state is not reported; removed once
//	            it is. The key of egressd's sparse GSI "unsettled" (RANGE
//	            cause, all attributes), through which redrive lists work.
//
// Monthly table, one row per customer, month and space (w3infra's exactly):
//
//	pk          "customer#<customer>"
//	sk          "<YYYY-MM>#<space>"
//	space, month, bytes N, eventCount N
//
// Record is one TransactWriteItems: a Put of the event row on condition that
// its key does not exist, and an Update that ADDs bytes and 1 to eventCount on
// the monthly row (and SETs space and month, as w3infra does). Either both
// happen or neither, so a retried or duplicated event can never count twice.
// A cancelled transaction whose put failed its condition is a duplicate: the
// stored row comes back with the cancellation and is returned, not new.
// The update is conditional too: on bytes staying within int64 after the
// ADD. When that fails, a second transaction puts the event row as failed
// ("monthly total would overflow") and ADDs only 1 to eventCount; the entry
// is returned not new, so the worker acknowledges it without billing it.
//
// The row key is the event's space, resource, servedAt and cause, all taken
// from the signed invocation whose CID is the cause, so one cause always
// yields one key: dedup on the key is dedup on the cause. Rows that w3infra
// wrote have no state: they are read as reported, and never marked again.
//
// Costs, for an operator sizing the tables (RCU/WCU per call; rows are about
// 0.5 KB):
//
//	Record    one transaction: 2 writes, billed double (about 4 WCU), plus
//	          one write to the unsettled index. The overflow condition
//	          costs nothing more; an event refused by it takes a second
//	          transaction of the same size.
//	Mark      one conditional UpdateItem (1 WCU) plus the unsettled index
//	          write (moving the row, or removing it once reported).
//	Entries   of pending, unbillable or failed entries: queries on the
//	          unsettled index, one per state and shard (16 shards), reading
//	          only those entries (a customer filter reads the others too).
//	          Listing reported entries scans the whole events table: it is
//	          meant for small tables and tests; use Usage for totals.
//	Usage     with a customer: one query on the monthly table's key. For all
//	          customers: a scan of the monthly table (one row per customer,
//	          space and month ever served).
//	Count     Usage's reads, plus a count query per unsettled state and
//	          shard; reported is the month's eventCount minus the others.
//
// The unsettled index is eventually consistent: Entries and Count lag writes
// by the index's propagation delay (usually well under a second). Record and
// Mark are strongly consistent.
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// DefaultUnsettledIndex is the events table's index of entries not yet
// reported (internal/awsinit creates it).
const DefaultUnsettledIndex = "unsettled"

// shards spreads each state of the unsettled index over this many partition
// keys, so that recording and settling events (every event enters and leaves
// the index) is not bounded by one partition's write rate.
const shards = 16

// recordAttempts bounds the transactions one Record tries when concurrent
// transactions on the same rows (the same event from two workers, or the same
// monthly row) cancel it with TransactionConflict.
const recordAttempts = 12

// timeLayout is JavaScript's Date.prototype.toISOString, which w3infra writes.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Tables names the tables a Ledger uses.
type Tables struct {
	Events  string
	Monthly string
	// UnsettledIndex is the events table's index of entries not yet
	// reported (default DefaultUnsettledIndex).
	UnsettledIndex string
}

// Ledger is the DynamoDB billing.Ledger.
type Ledger struct {
	client *dynamodb.Client
	tables Tables
	now    func() time.Time
}

var _ billing.Ledger = (*Ledger)(nil)

// New returns a Ledger on existing tables (see internal/awsinit to create them).
func New(client *dynamodb.Client, tables Tables) *Ledger {
	if tables.UnsettledIndex == "" {
		tables.UnsettledIndex = DefaultUnsettledIndex
	}
	return &Ledger{client: client, tables: tables, now: time.Now}
}

// Record puts the event row and counts it in the monthly row in one
// transaction, or returns the row already stored under the event's key.
func (l *Ledger) Record(ctx context.Context, ev billing.Event) (billing.Entry, bool, error) {
	if err := ev.Validate(); err != nil {
		return billing.Entry{}, false, fmt.Errorf("recording event: %w", err)
	}
	for attempt := 1; ; attempt++ {
		entry, isNew, conflict, err := l.record(ctx, ev)
		if err != nil {
			return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, err)
		}
		if !conflict {
			return entry, isNew, nil
		}
		if attempt == recordAttempts {
			return billing.Entry{}, false, fmt.Errorf("recording %s: %d transactions in a row cancelled by concurrent ones", ev.Cause, attempt)
		}
		// Conflicts are short-lived (another transaction on the same rows):
		// back off a little, with jitter so the contenders spread out.
		backoff := time.Duration(attempt) * 10 * time.Millisecond
		select {
		case <-ctx.Done():
			return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, ctx.Err())
		case <-time.After(backoff/2 + rand.N(backoff)):
		}
	}
}

// record tries the transaction once. conflict reports a transaction
// cancelled by a concurrent one, to be tried again.
func (l *Ledger) record(ctx context.Context, ev billing.Event) (entry billing.Entry, isNew, conflict bool, err error) {
	now := l.now()
	month := billing.Month(ev.ServedAt)
	item := eventItem(ev, now)
	_, err = l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{
				TableName:                           aws.String(l.tables.Events),
				Item:                                item,
				ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Update: &types.Update{
				TableName:        aws.String(l.tables.Monthly),
				Key:              monthlyKey(ev, month),
				UpdateExpression: aws.String("SET #space = :space, #month = :month ADD #bytes :bytes, eventCount :one"),
				// DynamoDB's 38-digit numbers would hold a larger sum, but
				// every reader (this package, w3infra's JavaScript) takes
				// it as a 64-bit or double number: keep totals in int64.
				ConditionExpression:      aws.String("attribute_not_exists(#bytes) OR #bytes <= :room"),
				ExpressionAttributeNames: map[string]string{"#space": "space", "#month": "month", "#bytes": "bytes"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":space": str(ev.Space),
					":month": str(month),
					":bytes": num(ev.Bytes),
					":one":   num(1),
					":room":  num(math.MaxInt64 - ev.Bytes),
				},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		},
	})
	if err == nil {
		e, err := decodeEntry(item)
		return e, true, false, err
	}
	var cancelled *types.TransactionCanceledException
	if !errors.As(err, &cancelled) {
		return billing.Entry{}, false, false, err
	}
	reasons := cancelled.CancellationReasons
	if len(reasons) > 0 && aws.ToString(reasons[0].Code) == "ConditionalCheckFailed" {
		// A duplicate: the totals already hold it, so only read.
		e, err := l.stored(ctx, ev, reasons[0].Item)
		return e, false, false, err
	}
	if len(reasons) > 1 && aws.ToString(reasons[1].Code) == "ConditionalCheckFailed" {
		return l.refuse(ctx, ev, month, reasons[1].Item)
	}
	for _, r := range reasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return billing.Entry{}, false, true, nil
		}
	}
	return billing.Entry{}, false, false, err
}

// refuse records ev as failed because its month's total (monthly, the row
// as the cancelled transaction found it) cannot take its bytes: the event
// row goes in with the reason, and the monthly row counts it as an event of
// the month without its bytes, so that Count (which derives reported
// entries from eventCount) stays right. Billing it would charge for bytes
// the totals never show; an operator sees it, and can redrive it. Like
// Record, it is one transaction; a duplicate that won the race is returned
// as stored.
func (l *Ledger) refuse(ctx context.Context, ev billing.Event, month string, monthly map[string]types.AttributeValue) (entry billing.Entry, isNew, conflict bool, err error) {
	total := "nothing"
	if v, ok := monthly["bytes"].(*types.AttributeValueMemberN); ok {
		total = v.Value
	}
	reason := fmt.Sprintf("%s: the %s total of space %s holds %s bytes, and %d more would pass %d",
		billing.ReasonTotalOverflow, month, ev.Space, total, ev.Bytes, int64(math.MaxInt64))
	item := eventItem(ev, l.now())
	item["state"] = str(string(billing.Failed))
	item["reason"] = str(reason)
	item["unsettled"] = str(unsettledKey(billing.Failed, ev.Cause))
	_, err = l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{
				TableName:                           aws.String(l.tables.Events),
				Item:                                item,
				ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Update: &types.Update{
				TableName:                 aws.String(l.tables.Monthly),
				Key:                       monthlyKey(ev, month),
				UpdateExpression:          aws.String("ADD eventCount :one"),
				ConditionExpression:       aws.String("attribute_exists(pk)"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1)},
			}},
		},
	})
	if err == nil {
		e, err := decodeEntry(item)
		// New, but settled: the worker acknowledges it without billing it.
		return e, true, false, err
	}
	var cancelled *types.TransactionCanceledException
	if !errors.As(err, &cancelled) {
		return billing.Entry{}, false, false, fmt.Errorf("refusing it in the monthly totals: %w", err)
	}
	reasons := cancelled.CancellationReasons
	if len(reasons) > 0 && aws.ToString(reasons[0].Code) == "ConditionalCheckFailed" {
		e, err := l.stored(ctx, ev, reasons[0].Item)
		return e, false, false, err
	}
	for _, r := range reasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return billing.Entry{}, false, true, nil
		}
	}
	return billing.Entry{}, false, false, fmt.Errorf("refusing it in the monthly totals: %w", err)
}

// stored decodes the row a failed put condition returned, reading it when
// the cancellation did not carry it.
func (l *Ledger) stored(ctx context.Context, ev billing.Event, item map[string]types.AttributeValue) (billing.Entry, error) {
	if len(item) == 0 {
		var err error
		if item, err = l.get(ctx, ev); err != nil {
			return billing.Entry{}, fmt.Errorf("reading the existing entry: %w", err)
		}
	}
	e, err := decodeEntry(item)
	if err != nil {
		return billing.Entry{}, fmt.Errorf("reading the existing entry: %w", err)
	}
	return e, nil
}

// monthlyKey is the monthly-table key of ev's total, as w3infra encodes it.
func monthlyKey(ev billing.Event, month string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": str("customer#" + ev.Customer),
		"sk": str(month + "#" + ev.Space),
	}
}

// get reads the event's row with a consistent read; billing.ErrNotFound when
// there is none.
func (l *Ledger) get(ctx context.Context, ev billing.Event) (map[string]types.AttributeValue, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.tables.Events),
		Key:            eventKey(ev),
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

// Mark sets the entry's state and reason unless it is already reported, in
// one conditional update.
func (l *Ledger) Mark(ctx context.Context, ev billing.Event, state billing.State, reason string) error {
	if _, err := billing.ParseState(string(state)); err != nil {
		return err
	}
	set := "SET #state = :state, #reason = :reason, updatedAt = :now"
	values := map[string]types.AttributeValue{
		":state":    str(string(state)),
		":reason":   str(reason),
		":now":      str(formatTime(l.now())),
		":reported": str(string(billing.Reported)),
	}
	update := set + " REMOVE unsettled"
	if state != billing.Reported {
		update = set + ", unsettled = :unsettled"
		values[":unsettled"] = str(unsettledKey(state, ev.Cause))
	}
	_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.tables.Events),
		Key:              eventKey(ev),
		UpdateExpression: aws.String(update),
		// A row without a state (w3infra wrote it) fails the condition:
		// such rows are final, like reported ones. So does a missing row.
		ConditionExpression:                 aws.String("attribute_exists(#state) AND #state <> :reported"),
		ExpressionAttributeNames:            map[string]string{"#state": "state", "#reason": "reason"},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		// Either already reported (nothing to do) or never recorded.
		if len(failed.Item) > 0 {
			return nil
		}
		if _, err := l.get(ctx, ev); err != nil {
			return fmt.Errorf("marking %s %s: %w", ev.Cause, state, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("marking %s %s: %w", ev.Cause, state, err)
	}
	return nil
}

// eventKey is the events-table key of ev, as w3infra encodes it.
func eventKey(ev billing.Event) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": str(ev.Space + "#" + ev.Resource),
		"sk": str(formatTime(ev.ServedAt) + "#" + ev.Cause),
	}
}

// eventItem is the row Record writes for a new event.
func eventItem(ev billing.Event, now time.Time) map[string]types.AttributeValue {
	item := eventKey(ev)
	item["space"] = str(ev.Space)
	item["customer"] = str(ev.Customer)
	item["resource"] = str(ev.Resource)
	item["servedAt"] = str(formatTime(ev.ServedAt))
	item["bytes"] = num(ev.Bytes)
	item["cause"] = str(ev.Cause)
	item["state"] = str(string(billing.Pending))
	item["reason"] = str("")
	item["recordedAt"] = str(formatTime(now))
	item["updatedAt"] = str(formatTime(now))
	item["unsettled"] = str(unsettledKey(billing.Pending, ev.Cause))
	return item
}

// decodeEntry reads an events-table row (or an unsettled-index item, which
// carries every attribute).
func decodeEntry(item map[string]types.AttributeValue) (billing.Entry, error) {
	var e billing.Entry
	e.Space = stringAttr(item, "space")
	e.Customer = stringAttr(item, "customer")
	e.Resource = stringAttr(item, "resource")
	e.Cause = stringAttr(item, "cause")
	e.Reason = stringAttr(item, "reason")
	var err error
	if e.Bytes, err = numberAttr(item, "bytes"); err != nil {
		return billing.Entry{}, err
	}
	if e.ServedAt, err = timeAttr(item, "servedAt"); err != nil {
		return billing.Entry{}, err
	}
	// Rows w3infra wrote carry none of the ledger's attributes: it reported
	// them itself.
	e.State = billing.Reported
	if s := stringAttr(item, "state"); s != "" {
		if e.State, err = billing.ParseState(s); err != nil {
			return billing.Entry{}, fmt.Errorf("row %s: %w", e.Cause, err)
		}
	}
	if e.RecordedAt, err = timeAttr(item, "recordedAt"); err != nil {
		return billing.Entry{}, err
	}
	if e.UpdatedAt, err = timeAttr(item, "updatedAt"); err != nil {
		return billing.Entry{}, err
	}
	return e, nil
}

// unsettledKey is the unsettled-index partition of an entry in state.
func unsettledKey(state billing.State, cause string) string {
	h := fnv.New32a()
	h.Write([]byte(cause))
	return unsettledPartition(state, int(h.Sum32()%shards))
}

func unsettledPartition(state billing.State, shard int) string {
	return string(state) + "#" + strconv.Itoa(shard)
}

// formatTime writes t as toISOString does: UTC, milliseconds.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// numberAttr reads an integer attribute; a missing one is 0. DynamoDB
// numbers have up to 38 digits, so a total that some other writer let grow
// past int64 is an error that says so, never a wrapped or rounded number.
func numberAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, nil
	}
	// w3infra writes JavaScript numbers, which may carry a fraction part of
	// zero or an exponent.
	r, ok := new(big.Rat).SetString(v.Value)
	if !ok || !r.IsInt() {
		return 0, fmt.Errorf("attribute %s = %q: not an integer", name, v.Value)
	}
	if n := r.Num(); n.IsInt64() {
		return n.Int64(), nil
	}
	return 0, fmt.Errorf("attribute %s = %s: past the 64-bit integers egressd counts in (largest %d)", name, v.Value, int64(math.MaxInt64))
}

// timeAttr reads an ISO 8601 attribute; a missing one is the zero time.
func timeAttr(item map[string]types.AttributeValue, name string) (time.Time, error) {
	s := stringAttr(item, name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute %s = %q: %w", name, s, err)
	}
	return t.UTC(), nil
}
