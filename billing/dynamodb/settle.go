package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// The conditions under which Settle and Reject change a batch (or an entry
// that is a batch of one by itself), over #state, resend, :resend,
// :reported and :rejected. Entries written before resends existed have no
// resend attribute: it reads as 0, which no resend is below.
const (
	// Settle: a reported batch is final; a rejected one changes only for
	// a later resend; none changes for an earlier one.
	settleCondition = "(attribute_not_exists(resend) OR resend <= :resend) AND " +
		"((#state <> :reported AND #state <> :rejected) OR " +
		"(#state = :rejected AND (attribute_not_exists(resend) OR resend < :resend)))"
	// Reject: whatever the state, unless settled under a later resend.
	rejectCondition = "(attribute_not_exists(resend) OR resend <= :resend)"
)

// Batch returns the batch with id: through the entry of its first member,
// then its batch item; an entry that is a batch of one by itself is read
// as that batch.
func (l *Ledger) Batch(ctx context.Context, id string) (billing.Batch, error) {
	entry, key, err := l.locate(ctx, id)
	if err != nil {
		return billing.Batch{}, fmt.Errorf("reading batch %s: %w", id, err)
	}
	if key == nil {
		return soloBatch(entry)
	}
	item, err := l.get(ctx, key)
	if err != nil {
		return billing.Batch{}, fmt.Errorf("reading batch %s: its item: %w", id, err)
	}
	return decodeBatch(item)
}

// locate finds batch id through the entry of its first member: the key of
// its batch item, or no key for an entry that is a batch of one by itself
// (returned). ErrNotFound when id is no batch's.
func (l *Ledger) locate(ctx context.Context, id string) (entry, key map[string]types.AttributeValue, err error) {
	entry, err = l.get(ctx, entryKey(id))
	if err != nil {
		return nil, nil, err
	}
	if !isBatchOf(entry, id) {
		// A member, but not the first: its cause names no batch.
		return nil, nil, billing.ErrNotFound
	}
	if stringAttr(entry, "batch") == "" {
		return entry, nil, nil
	}
	at, err := numberAttr(entry, "batchAt")
	if err != nil {
		return nil, nil, fmt.Errorf("entry %s: %w", id, err)
	}
	return entry, batchKey(stringAttr(entry, "customer"), time.UnixMilli(at), id), nil
}

// Settle moves each batch, and its members, to its state with its reason,
// on the rules of billing.Ledger, storing the batch's Account when it is
// set. Settlements of one batch apply in order; of different batches, side
// by side.
func (l *Ledger) Settle(ctx context.Context, settlements ...billing.Settlement) error {
	var ids []string
	byID := make(map[string][]billing.Settlement)
	for _, s := range settlements {
		if _, err := billing.ParseState(string(s.State)); err != nil {
			return fmt.Errorf("settling batch %s: %w", s.Batch.ID, err)
		}
		if _, ok := byID[s.Batch.ID]; !ok {
			ids = append(ids, s.Batch.ID)
		}
		byID[s.Batch.ID] = append(byID[s.Batch.ID], s)
	}
	return parallel(ctx, len(ids), func(ctx context.Context, i int) error {
		for _, s := range byID[ids[i]] {
			c := change{
				id: s.Batch.ID, resend: s.Batch.Resend, account: s.Batch.Account, state: s.State, reason: s.Reason, condition: settleCondition,
				// Where the batch item is, if the caller's batch is the
				// ledger's: no read needed to find it.
				key: batchKey(s.Batch.Customer, s.Batch.Timestamp, s.Batch.ID),
			}
			if err := l.change(ctx, c); err != nil {
				return fmt.Errorf("settling batch %s as %s: %w", s.Batch.ID, s.State, err)
			}
		}
		return nil
	})
}

// Reject moves the batch id and its members to rejected with reason, and
// stores resend, unless the batch was settled under a later resend. The
// account it was billed to stays.
func (l *Ledger) Reject(ctx context.Context, id string, resend int, reason string) error {
	c := change{id: id, resend: resend, state: billing.Rejected, reason: reason, condition: rejectCondition}
	if err := l.change(ctx, c); err != nil {
		return fmt.Errorf("rejecting batch %s: %w", id, err)
	}
	return nil
}

// change is a state change of one batch.
type change struct {
	id     string
	resend int
	// account is the sink account the batch went to; empty keeps the
	// stored one (a settlement that never reached the sink, a rejection).
	account   string
	state     billing.State
	reason    string
	condition string
	// key is where the batch item should be; nil to find it through the
	// entry of the batch's first member.
	key map[string]types.AttributeValue
}

// values are the expression values of c's update and condition.
func (c change) values(now time.Time) map[string]types.AttributeValue {
	values := map[string]types.AttributeValue{
		":state":  str(string(c.state)),
		":reason": str(c.reason),
		":resend": num(int64(c.resend)),
		":now":    str(formatTime(now)),
	}
	// DynamoDB refuses values an expression does not use.
	if strings.Contains(c.condition, ":reported") {
		values[":reported"] = str(string(billing.Reported))
		values[":rejected"] = str(string(billing.Rejected))
	}
	if c.account != "" {
		values[":account"] = str(c.account)
	}
	return values
}

// update is the update expression of c over an item whose state, resend
// and updatedAt it sets, then more.
func (c change) update(more string) string {
	u := "SET #state = :state, #reason = :reason, resend = :resend, updatedAt = :now"
	if c.account != "" {
		u += ", account = :account"
	}
	return u + more
}

// change applies c to its batch item, or to the entry that is the batch,
// and brings the batch's members into line.
func (l *Ledger) change(ctx context.Context, c change) error {
	if c.key != nil {
		if found, err := l.changeBatch(ctx, c, c.key); err != nil || found {
			return err
		}
		// No item there: a batch of one written before batches, or a batch
		// the caller holds with another timestamp than the ledger's.
	}
	_, key, err := l.locate(ctx, c.id)
	if err != nil {
		return err
	}
	if key == nil {
		migrated, err := l.changeSolo(ctx, c)
		if err != nil || !migrated {
			return err
		}
		// MigrateToBatches gave it a batch item meanwhile: change that.
		if _, key, err = l.locate(ctx, c.id); err != nil {
			return err
		}
	}
	found, err := l.changeBatch(ctx, c, key)
	if err == nil && !found {
		return fmt.Errorf("the item of batch %s is missing though its first member names it", c.id)
	}
	return err
}

// changeBatch updates the batch item at key where c's condition holds,
// bumping its version, then brings the members into line with the item as
// it stands, changed or not. found is false when there is no item at key.
func (l *Ledger) changeBatch(ctx context.Context, c change, key map[string]types.AttributeValue) (found bool, err error) {
	values := c.values(l.now())
	values[":one"] = num(1)
	out, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(l.tables.Ledger),
		Key:                                 key,
		UpdateExpression:                    aws.String(c.update(" ADD version :one")),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND " + c.condition),
		ExpressionAttributeNames:            map[string]string{"#state": "state", "#reason": "reason"},
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		// Too late to change the batch, or no batch there.
		item := failed.Item
		if len(item) == 0 {
			if item, err = l.get(ctx, key); errors.Is(err, billing.ErrNotFound) {
				return false, nil
			} else if err != nil {
				return false, err
			}
		}
		// Members may lag behind the batch (a stop between its update and
		// theirs): read them, and update those that do.
		return true, l.syncMembers(ctx, item, true)
	}
	if err != nil {
		return false, err
	}
	return true, l.syncMembers(ctx, out.Attributes, false)
}

// syncMembers copies the state, reason and version of a batch item to its
// members: all of them unless readFirst, else those a consistent read finds
// on an older version or disagreeing with it. A member update applies only
// over the same or an older version, so members end in the batch's last
// state whatever order concurrent changes run in.
func (l *Ledger) syncMembers(ctx context.Context, batch map[string]types.AttributeValue, readFirst bool) error {
	id := stringAttr(batch, "id")
	version, err := numberAttr(batch, "version")
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	state, err := stateAttr(batch)
	if err != nil {
		return fmt.Errorf("batch %s: %w", id, err)
	}
	reason := stringAttr(batch, "reason")
	causes := members(batch)
	if readFirst {
		if causes, err = l.lagging(ctx, causes, version, state, reason); err != nil {
			return fmt.Errorf("reading the members of batch %s: %w", id, err)
		}
	}
	err = parallel(ctx, len(causes), func(ctx context.Context, i int) error {
		_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        aws.String(l.tables.Ledger),
			Key:              entryKey(causes[i]),
			UpdateExpression: aws.String("SET #state = :state, #reason = :reason, updatedAt = :now, stateKey = :stateKey, batchVersion = :version"),
			// A missing member fails the comparison too: nothing to update.
			ConditionExpression:      aws.String("#batch = :batch AND batchVersion <= :version"),
			ExpressionAttributeNames: map[string]string{"#state": "state", "#reason": "reason", "#batch": "batch"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":state":    str(string(state)),
				":reason":   str(reason),
				":now":      batch["updatedAt"],
				":stateKey": str(stateKey(state, causes[i])),
				":version":  num(version),
				":batch":    str(id),
			},
		})
		var later *types.ConditionalCheckFailedException
		if errors.As(err, &later) {
			return nil // a later change of the batch got there first
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("updating the members of batch %s: %w", id, err)
	}
	return nil
}

// lagging returns the causes whose entries copy a batch version older than
// version, or disagree with the batch's state and reason at version.
func (l *Ledger) lagging(ctx context.Context, causes []string, version int64, state billing.State, reason string) ([]string, error) {
	behind := make(map[string]bool, len(causes))
	for chunk := range slices.Chunk(causes, 100) {
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for i, cause := range chunk {
			keys[i] = entryKey(cause)
		}
		var bad error
		err := l.batchGet(ctx, map[string]types.KeysAndAttributes{
			l.tables.Ledger: {
				Keys: keys, ConsistentRead: aws.Bool(true),
				ProjectionExpression:     aws.String("cause, batchVersion, #state, #reason"),
				ExpressionAttributeNames: map[string]string{"#state": "state", "#reason": "reason"},
			},
		}, func(_ string, item map[string]types.AttributeValue) {
			v, err := numberAttr(item, "batchVersion")
			if err != nil {
				bad = err
			}
			if v < version || stringAttr(item, "state") != string(state) || stringAttr(item, "reason") != reason {
				behind[stringAttr(item, "cause")] = true
			}
		})
		if err = errors.Join(err, bad); err != nil {
			return nil, err
		}
	}
	return slices.DeleteFunc(slices.Clone(causes), func(c string) bool { return !behind[c] }), nil
}

// changeSolo applies c to an entry that is a batch of one by itself, where
// c's condition holds; a condition that fails means c came too late, unless
// the entry has a batch item now (migrated reports it).
func (l *Ledger) changeSolo(ctx context.Context, c change) (migrated bool, err error) {
	values := c.values(l.now())
	values[":stateKey"] = str(stateKey(c.state, c.id))
	_, err = l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.tables.Ledger),
		Key:              entryKey(c.id),
		UpdateExpression: aws.String(c.update(", stateKey = :stateKey")),
		// Once it has a batch item, the batch item is where its state is.
		ConditionExpression:                 aws.String("attribute_exists(pk) AND attribute_not_exists(#batch) AND " + c.condition),
		ExpressionAttributeNames:            map[string]string{"#state": "state", "#reason": "reason", "#batch": "batch"},
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var late *types.ConditionalCheckFailedException
	if errors.As(err, &late) {
		item := late.Item
		if len(item) == 0 {
			if item, err = l.get(ctx, entryKey(c.id)); err != nil {
				return false, err
			}
		}
		return stringAttr(item, "batch") != "", nil
	}
	return false, err
}
