package dynamodb

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// The items of the ledger table and of Storacha's tables, as the package
// comment lays them out, and how they read back.

// entryKey is the ledger-table key of the entry of cause.
func entryKey(cause string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str("entry#" + cause), "sk": str("entry")}
}

// batchKey is the ledger-table key of the batch id of customer, at its
// timestamp.
func batchKey(customer string, at time.Time, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str("batch#" + customer), "sk": str(batchSort(at.UnixMilli(), id))}
}

// batchSort orders a customer's batches by timestamp: 13 digits of Unix
// milliseconds last until the year 2286.
func batchSort(ms int64, id string) string { return fmt.Sprintf("%013d#%s", ms, id) }

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
	row := eventKey(ev)
	row["space"] = str(ev.Space)
	row["customer"] = str(ev.Customer)
	row["resource"] = str(ev.Resource)
	row["servedAt"] = str(formatTime(ev.ServedAt))
	row["bytes"] = num(ev.Bytes)
	row["cause"] = str(ev.Cause)
	return row
}

// monthlyKey is the monthly-table key of a customer's total in a space and
// month, as w3infra encodes it.
func monthlyKey(customer, space, month string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": str("customer#" + customer),
		"sk": str(month + "#" + space),
	}
}

// entryItem is the ledger entry of ev, a member of batch b, in b's state.
func entryItem(ev billing.Event, b billing.Batch) map[string]types.AttributeValue {
	item := soloEntryItem(ev, b.State, b.Reason, b.RecordedAt)
	item["batch"] = str(b.ID)
	item["batchAt"] = num(b.Timestamp.UnixMilli())
	item["batchVersion"] = num(0)
	return item
}

// soloEntryItem is a ledger entry that is a batch of one by itself, as
// entries were before batches and as adopted ones are.
func soloEntryItem(ev billing.Event, state billing.State, reason string, now time.Time) map[string]types.AttributeValue {
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
	return item
}

// batchItem is the ledger item of batch b with its members.
func batchItem(b billing.Batch, members []billing.Event) map[string]types.AttributeValue {
	causes := make([]types.AttributeValue, len(members))
	for i, ev := range members {
		causes[i] = str(ev.Cause)
	}
	item := batchKey(b.Customer, b.Timestamp, b.ID)
	item["id"] = str(b.ID)
	item["customer"] = str(b.Customer)
	item["timestamp"] = str(formatTime(b.Timestamp))
	item["bytes"] = num(b.Bytes)
	item["events"] = num(int64(b.Events))
	item["members"] = &types.AttributeValueMemberL{Value: causes}
	item["resend"] = num(int64(b.Resend))
	item["state"] = str(string(b.State))
	item["reason"] = str(b.Reason)
	item["recordedAt"] = str(formatTime(b.RecordedAt))
	item["updatedAt"] = str(formatTime(b.UpdatedAt))
	item["version"] = num(0)
	// Only once there is one: a new batch has none, and every byte of an
	// item costs write units each time Settle rewrites it.
	if b.Account != "" {
		item["account"] = str(b.Account)
	}
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
	e.Batch = stringAttr(item, "batch")
	if e.Batch == "" {
		e.Batch = e.Cause
	}
	var err error
	if e.Bytes, err = numberAttr(item, "bytes"); err != nil {
		return billing.Entry{}, err
	}
	if e.ServedAt, err = timeAttr(item, "servedAt"); err != nil {
		return billing.Entry{}, err
	}
	if e.State, err = stateAttr(item); err != nil {
		return billing.Entry{}, fmt.Errorf("entry %s: %w", e.Cause, err)
	}
	if e.RecordedAt, err = timeAttr(item, "recordedAt"); err != nil {
		return billing.Entry{}, err
	}
	if e.UpdatedAt, err = timeAttr(item, "updatedAt"); err != nil {
		return billing.Entry{}, err
	}
	return e, nil
}

// decodeBatch reads a batch item.
func decodeBatch(item map[string]types.AttributeValue) (billing.Batch, error) {
	b := billing.Batch{
		ID:       stringAttr(item, "id"),
		Customer: stringAttr(item, "customer"),
		Account:  stringAttr(item, "account"),
		Reason:   stringAttr(item, "reason"),
	}
	var err error
	if b.Timestamp, err = timeAttr(item, "timestamp"); err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	if b.Bytes, err = numberAttr(item, "bytes"); err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	events, err := numberAttr(item, "events")
	if err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	b.Events = int(events)
	resend, err := numberAttr(item, "resend")
	if err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	b.Resend = int(resend)
	if b.State, err = stateAttr(item); err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	if b.RecordedAt, err = timeAttr(item, "recordedAt"); err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	if b.UpdatedAt, err = timeAttr(item, "updatedAt"); err != nil {
		return billing.Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	return b, nil
}

// soloBatch reads an entry that is a batch of one by itself (it has no
// batch attribute) as that batch.
func soloBatch(item map[string]types.AttributeValue) (billing.Batch, error) {
	e, err := decodeEntry(item)
	if err != nil {
		return billing.Batch{}, err
	}
	resend, err := numberAttr(item, "resend")
	if err != nil {
		return billing.Batch{}, fmt.Errorf("entry %s: %w", e.Cause, err)
	}
	return billing.Batch{
		ID: e.Cause, Customer: e.Customer, Account: stringAttr(item, "account"), Timestamp: e.ServedAt, Bytes: e.Bytes, Events: 1,
		Resend: int(resend), State: e.State, Reason: e.Reason, RecordedAt: e.RecordedAt, UpdatedAt: e.UpdatedAt,
	}, nil
}

// members reads the causes of a batch item's members.
func members(item map[string]types.AttributeValue) []string {
	l, _ := item["members"].(*types.AttributeValueMemberL)
	if l == nil {
		return nil
	}
	causes := make([]string, 0, len(l.Value))
	for _, v := range l.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			causes = append(causes, s.Value)
		}
	}
	return causes
}

// stateAttr reads an item's state; none is reported (w3infra's rows).
func stateAttr(item map[string]types.AttributeValue) (billing.State, error) {
	s := stringAttr(item, "state")
	if s == "" {
		return billing.Reported, nil
	}
	return billing.ParseState(s)
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

// isBatchOf tells whether an entry item is where batch id begins: its first
// member, or an entry that is a batch of one by itself.
func isBatchOf(item map[string]types.AttributeValue, id string) bool {
	b := stringAttr(item, "batch")
	return b == "" || b == id
}

// causeOfEventsKey reads the cause out of an events row's sort key
// "<servedAt>#<cause>" (servedAt has no '#').
func causeOfEventsKey(sk string) string {
	_, cause, _ := strings.Cut(sk, "#")
	return cause
}
