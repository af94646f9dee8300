// Package dynamodb is the billing ledger on DynamoDB. It writes Storacha's
// w3infra egress-traffic-events and egress-traffic-monthly rows exactly as
// w3infra writes them, so Storacha's reports keep working, and keeps its own
// state (each event's ledger state and reason) in a table of its own, so
// that no table of Storacha's gains an attribute, an index or a schema change.
//
// Storacha's events table, one row per event (w3infra's attributes only):
//
//	pk          "<space>#<resource>"                 (HASH)
//	sk          "<servedAt>#<cause>"                 (RANGE)
//	space, customer, resource, cause   S
//	servedAt    ISO 8601 UTC with milliseconds, as JavaScript's toISOString
//	bytes       N
//
// Storacha's monthly table, one row per customer, month and space:
//
//	pk          "customer#<customer>"
//	sk          "<YYYY-MM>#<space>"
//	space, month S; bytes, eventCount N (ADDed)
//
// egressd's ledger table (<prefix>egressd-ledger, HASH pk, RANGE sk, GSI
// "state" on stateKey + stateSort, all attributes), two kinds of item:
//
//	entry       pk "entry#<cause>", sk "entry": the event's attributes,
//	            month, state, reason, resend, recordedAt, updatedAt, and
//	            stateKey "<state>#<shard>" (16 shards by cause) with
//	            stateSort = cause: every entry is in the state index, so
//	            listing any state (reported included) is a query.
//	month       pk "month#<YYYY-MM>", sk "<customer>#<space>": that the
//	            month has a total for this customer and space, so usage
//	            of every customer is a query, not a scan of Storacha's
//	            monthly table (which has no index by month).
//	lock        pk "lock#<customer>", sk "lock": which worker may call
//	            Stripe for the customer now (CustomerLock, lock.go).
//
// Record is one TransactWriteItems: the entry, put on condition that its
// cause is new (the dedup), and the monthly row's ADD of bytes and 1 to
// eventCount (conditional on the total staying within int64), plus the
// month item the first time this process counts a customer and space in a
// month (a plain SET, so repeating it costs nothing but the write). The
// Storacha events row follows with a plain put: its key and content are
// fixed by the event, so writing it again is harmless, and a redelivered
// event that is still pending writes it again, mending a crash between the
// two. Before all this, one read of the events row tells whether w3infra
// itself recorded the event (during a cut-over from Storacha's pipeline):
// then the entry goes in as reported, and nothing is counted twice.
//
// Costs, for an operator sizing the tables (WCU per event, items under 1 KB,
// transactional writes and their index writes billed double):
//
//	Record   the entry and its state index entry (4), the monthly row and
//	         its index (4), the events row and its two indexes (3), and
//	         one strongly consistent read (1 RCU).
//	Mark     the entry (1) and its move in the state index (2); Reject
//	         the same.
//
// Rows w3infra wrote have no entry: they are read as reported.
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
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/dynamotables"
)

// DefaultStateIndex is the ledger table's index of entries by state, as
// internal/dynamotables lays the table out.
const DefaultStateIndex = dynamotables.LedgerStateIndex

// shards spreads each state of the state index over this many partition
// keys, so that recording and settling events is not bounded by one
// partition's write rate.
const shards = 16

// recordAttempts bounds the transactions one Record tries when concurrent
// transactions on the same rows (the same event from two workers, or the same
// monthly row) cancel it with TransactionConflict.
const recordAttempts = 12

// monthsSeen bounds the customer-space-months this process remembers having
// registered in the ledger table.
const monthsSeen = 65536

// timeLayout is JavaScript's Date.prototype.toISOString, which w3infra writes.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Tables names the tables a Ledger uses.
type Tables struct {
	// Events and Monthly are Storacha's egress-traffic tables.
	Events  string
	Monthly string
	// Ledger is egressd's own table.
	Ledger string
	// StateIndex is the ledger table's index by state (default DefaultStateIndex).
	StateIndex string
}

// Ledger is a billing.Ledger on DynamoDB.
type Ledger struct {
	client *dynamodb.Client
	tables Tables
	now    func() time.Time
	// registered remembers the month items this process has written.
	registered *lru.Cache[string, struct{}]
}

var _ billing.Ledger = (*Ledger)(nil)

// New returns a ledger on the given tables.
func New(client *dynamodb.Client, tables Tables) *Ledger {
	if tables.StateIndex == "" {
		tables.StateIndex = DefaultStateIndex
	}
	registered, _ := lru.New[string, struct{}](monthsSeen)
	return &Ledger{client: client, tables: tables, now: time.Now, registered: registered}
}

// Record counts a new event in the monthly totals and writes its entry and
// its Storacha row, or returns the entry already stored for its cause.
func (l *Ledger) Record(ctx context.Context, ev billing.Event) (billing.Entry, bool, error) {
	if err := ev.Validate(); err != nil {
		return billing.Entry{}, false, fmt.Errorf("recording event: %w", err)
	}
	if byStoracha, err := l.recordedByStoracha(ctx, ev); err != nil {
		return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, err)
	} else if byStoracha {
		entry, isNew, err := l.adopt(ctx, ev)
		if err != nil {
			return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, err)
		}
		return entry, isNew, nil
	}
	for attempt := 1; ; attempt++ {
		entry, isNew, conflict, err := l.record(ctx, ev)
		if err != nil {
			return billing.Entry{}, false, fmt.Errorf("recording %s: %w", ev.Cause, err)
		}
		if !conflict {
			// The Storacha row of a counted event still pending: new, or
			// redelivered after a stop before its row was written.
			if entry.State == billing.Pending {
				if _, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.tables.Events), Item: eventRow(ev)}); err != nil {
					return billing.Entry{}, false, fmt.Errorf("recording %s: writing the events row: %w", ev.Cause, err)
				}
			}
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
	item := entryItem(ev, billing.Pending, "", now)
	items := []types.TransactWriteItem{
		l.newEntry(item),
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
	}
	register := l.monthItem(ev, month)
	if register != nil {
		items = append(items, *register)
	}
	_, err = l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		l.registered.Add(monthKey(ev, month), struct{}{})
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

// adopt records, as reported, an event whose row w3infra wrote itself:
// Storacha's pipeline counted and billed it already.
func (l *Ledger) adopt(ctx context.Context, ev billing.Event) (billing.Entry, bool, error) {
	item := entryItem(ev, billing.Reported, "recorded by Storacha's own pipeline", l.now())
	_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(l.tables.Ledger),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		e, err := l.stored(ctx, ev, failed.Item)
		return e, false, err
	}
	if err != nil {
		return billing.Entry{}, false, fmt.Errorf("adopting Storacha's record of it: %w", err)
	}
	e, err := decodeEntry(item)
	return e, false, err
}

// recordedByStoracha reads whether ev's row in Storacha's events table
// exists, written by w3infra (egressd writes it only after its entry).
func (l *Ledger) recordedByStoracha(ctx context.Context, ev billing.Event) (bool, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.tables.Events), Key: eventKey(ev), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("pk"),
	})
	if err != nil {
		return false, fmt.Errorf("reading Storacha's events row: %w", err)
	}
	return len(out.Item) > 0, nil
}

// newEntry puts a ledger entry on condition that its cause is new (the
// dedup); a failed condition hands back the stored entry.
func (l *Ledger) newEntry(item map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                           aws.String(l.tables.Ledger),
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
}

// monthItem is the write that registers ev's customer and space in its
// month, or nil when this process has written it already.
func (l *Ledger) monthItem(ev billing.Event, month string) *types.TransactWriteItem {
	if l.registered.Contains(monthKey(ev, month)) {
		return nil
	}
	return &types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(l.tables.Ledger),
		Key: map[string]types.AttributeValue{
			"pk": str("month#" + month),
			"sk": str(ev.Customer + "#" + ev.Space),
		},
		UpdateExpression:          aws.String("SET customer = :customer, #space = :space"),
		ExpressionAttributeNames:  map[string]string{"#space": "space"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":customer": str(ev.Customer), ":space": str(ev.Space)},
	}}
}

func monthKey(ev billing.Event, month string) string {
	return month + " " + ev.Customer + " " + ev.Space
}

// refuse records ev as failed because its month's total (monthly, the row
// as the cancelled transaction found it) cannot take its bytes: the entry
// goes in with the reason, and the monthly row counts it as an event of the
// month without its bytes, so that Count (which derives reported entries
// from eventCount) stays right. Billing it would charge for bytes the totals
// never show; an operator sees it, and can redrive it. Like Record, it is
// one transaction; a duplicate that won the race is returned as stored.
func (l *Ledger) refuse(ctx context.Context, ev billing.Event, month string, monthly map[string]types.AttributeValue) (entry billing.Entry, isNew, conflict bool, err error) {
	total := "nothing"
	if v, ok := monthly["bytes"].(*types.AttributeValueMemberN); ok {
		total = v.Value
	}
	reason := fmt.Sprintf("%s: the %s total of space %s holds %s bytes, and %d more would pass %d",
		billing.ReasonTotalOverflow, month, ev.Space, total, ev.Bytes, int64(math.MaxInt64))
	item := entryItem(ev, billing.Failed, reason, l.now())
	_, err = l.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			l.newEntry(item),
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

// stored decodes the entry a failed put condition returned, reading it when
// the cancellation did not carry it.
func (l *Ledger) stored(ctx context.Context, ev billing.Event, item map[string]types.AttributeValue) (billing.Entry, error) {
	if len(item) == 0 {
		var err error
		if item, err = l.get(ctx, ev.Cause); err != nil {
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

// get reads the entry of cause with a consistent read; billing.ErrNotFound
// when there is none.
func (l *Ledger) get(ctx context.Context, cause string) (map[string]types.AttributeValue, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.tables.Ledger),
		Key:            entryKey(cause),
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

// Mark sets the entry's state, reason and resend unless it is reported,
// rejected under the same or a later resend, or marked under a later
// resend, in one conditional update.
func (l *Ledger) Mark(ctx context.Context, ev billing.Event, state billing.State, reason string) error {
	if _, err := billing.ParseState(string(state)); err != nil {
		return err
	}
	// Entries written before resends existed have no resend attribute:
	// it reads as 0, which no resend is below.
	storedBelow := "resend < :resend"
	if ev.Resend > 0 {
		storedBelow = "(attribute_not_exists(resend) OR resend < :resend)"
	}
	return l.update(ctx, ev.Cause, ev.Resend, state, reason,
		"(attribute_not_exists(resend) OR resend <= :resend) AND "+
			"((#state <> :reported AND #state <> :rejected) OR (#state = :rejected AND "+storedBelow+"))")
}

// Reject sets the entry of cause to rejected with reason and resend,
// whatever its state, unless it was marked under a later resend, in one
// conditional update. Entries w3infra's pipeline reported have an entry
// too (Record adopts them), so every identifier egressd sent has one.
func (l *Ledger) Reject(ctx context.Context, cause string, resend int, reason string) error {
	return l.update(ctx, cause, resend, billing.Rejected, reason, "(attribute_not_exists(resend) OR resend <= :resend)")
}

// update sets the state, reason and resend of the entry of cause where the
// entry exists and condition (over #state, resend, :resend, :reported and
// :rejected) holds. A failed condition is fine if the entry exists (the
// update came too late to apply); ErrNotFound if it does not.
func (l *Ledger) update(ctx context.Context, cause string, resend int, state billing.State, reason, condition string) error {
	values := map[string]types.AttributeValue{
		":state":    str(string(state)),
		":reason":   str(reason),
		":now":      str(formatTime(l.now())),
		":stateKey": str(stateKey(state, cause)),
		":resend":   num(int64(resend)),
	}
	if strings.Contains(condition, ":reported") {
		values[":reported"] = str(string(billing.Reported))
		values[":rejected"] = str(string(billing.Rejected))
	}
	_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.tables.Ledger),
		Key:              entryKey(cause),
		UpdateExpression: aws.String("SET #state = :state, #reason = :reason, updatedAt = :now, stateKey = :stateKey, resend = :resend"),
		// A missing entry fails the condition too (attribute_exists).
		ConditionExpression:                 aws.String("attribute_exists(pk) AND " + condition),
		ExpressionAttributeNames:            map[string]string{"#state": "state", "#reason": "reason"},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		// Either too late to apply (nothing to do) or never recorded.
		if len(failed.Item) > 0 {
			return nil
		}
		if _, err := l.get(ctx, cause); err != nil {
			return fmt.Errorf("marking %s %s: %w", cause, state, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("marking %s %s: %w", cause, state, err)
	}
	return nil
}

// eventKey is the key of ev's row in Storacha's events table.
func eventKey(ev billing.Event) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": str(ev.Space + "#" + ev.Resource),
		"sk": str(formatTime(ev.ServedAt) + "#" + ev.Cause),
	}
}

// eventRow is ev's row in Storacha's events table: w3infra's attributes
// and nothing else.
func eventRow(ev billing.Event) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk":       str(ev.Space + "#" + ev.Resource),
		"sk":       str(formatTime(ev.ServedAt) + "#" + ev.Cause),
		"space":    str(ev.Space),
		"customer": str(ev.Customer),
		"resource": str(ev.Resource),
		"servedAt": str(formatTime(ev.ServedAt)),
		"bytes":    num(ev.Bytes),
		"cause":    str(ev.Cause),
	}
}

// entryKey is the ledger-table key of the entry of cause.
func entryKey(cause string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str("entry#" + cause), "sk": str("entry")}
}

// entryItem is the ledger entry of ev in state.
func entryItem(ev billing.Event, state billing.State, reason string, now time.Time) map[string]types.AttributeValue {
	item := entryKey(ev.Cause)
	item["cause"] = str(ev.Cause)
	item["space"] = str(ev.Space)
	item["customer"] = str(ev.Customer)
	item["resource"] = str(ev.Resource)
	item["servedAt"] = str(formatTime(ev.ServedAt))
	item["month"] = str(billing.Month(ev.ServedAt))
	item["bytes"] = num(ev.Bytes)
	item["state"] = str(string(state))
	item["reason"] = str(reason)
	item["recordedAt"] = str(formatTime(now))
	item["updatedAt"] = str(formatTime(now))
	item["stateKey"] = str(stateKey(state, ev.Cause))
	item["stateSort"] = str(ev.Cause)
	item["resend"] = num(int64(ev.Resend))
	return item
}

// decodeEntry reads a ledger entry, or a row of Storacha's events table
// (which w3infra reported itself: no state means reported).
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
	resend, err := numberAttr(item, "resend")
	if err != nil {
		return billing.Entry{}, err
	}
	e.Resend = int(resend)
	e.State = billing.Reported
	if s := stringAttr(item, "state"); s != "" {
		if e.State, err = billing.ParseState(s); err != nil {
			return billing.Entry{}, fmt.Errorf("entry %s: %w", e.Cause, err)
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

// stateKey is the state-index partition of an entry in state.
func stateKey(state billing.State, cause string) string {
	h := fnv.New32a()
	h.Write([]byte(cause))
	return statePartition(state, int(h.Sum32()%shards))
}

func statePartition(state billing.State, shard int) string {
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
