package dynamodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/backoff"
)

// CustomerLock is a lock per customer in the ledger table, so that workers
// on different machines never call Stripe for one customer at once (Stripe
// allows one meter-event call per customer and meter, and answers a second
// with 429). The item is pk "lock#<customer>", sk "lock", with its holder
// and a version that the holder changes every TTL/3 while it works.
//
// No clock is compared across machines: a waiter takes the lock when the
// item is gone, or when it has watched the same version for a whole TTL on
// its own clock (the holder died). A holder whose renewal fails, or that
// has not renewed for most of a TTL, loses the lock at once: the context
// Lock returns ends, and the Stripe call under it with it (the event is
// then retried; Stripe dedupes it on its identifier).
//
// So that there are never two holders, the holder's context ends 2/3 of a
// TTL after it sent the last call that wrote the item (the put that took
// it, or a renewal that succeeded), on its own monotonic clock, by a timer
// that waits for no call: a waiter first sees that version after it was
// written, so it cannot take the lock before a whole TTL after the call was
// sent, and the third of a TTL between is the margin for the two clocks'
// rates and for the holder's scheduling. Each call has a deadline of a
// third of a TTL, so a renewal that hangs fails in time for the next.
type CustomerLock struct {
	client *dynamodb.Client
	table  string
	// TTL is how long a waiter watches an unchanged version before taking
	// the lock of a holder that died.
	TTL time.Duration
	// Poll is the wait between looks while another holds the lock (with jitter).
	Poll time.Duration
	now  func() time.Time
}

// Defaults for CustomerLock.
const (
	DefaultLockTTL  = 30 * time.Second
	DefaultLockPoll = 25 * time.Millisecond
)

// NewCustomerLock locks customers in the ledger table.
func NewCustomerLock(client *dynamodb.Client, tables Tables) *CustomerLock {
	return &CustomerLock{client: client, table: tables.Ledger, TTL: DefaultLockTTL, Poll: DefaultLockPoll, now: time.Now}
}

// Lock waits until this caller holds customer's lock, or ctx ends. The
// returned context ends when the lock is lost (context.Cause says why) or
// unlock is called: work that must not overlap another holder's runs under
// it.
func (l *CustomerLock) Lock(ctx context.Context, customer string) (held context.Context, unlock func(), err error) {
	owner := newToken()
	var (
		seen      string    // the version last seen in another holder's item
		seenSince time.Time // when it was first seen, on this machine's clock
	)
	// When the call that wrote this holder's item was sent: time.Now, not
	// l.now, for its monotonic reading, which no setting of the clock moves.
	var written time.Time
	for {
		written = time.Now()
		version, taken, err := l.take(ctx, customer, owner, seen, !seenSince.IsZero() && l.now().Sub(seenSince) >= l.TTL)
		if err != nil {
			// The put may have landed all the same, unknown to this
			// caller: remove it rather than leave others a TTL to wait.
			l.release(customer, owner)
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return nil, nil, fmt.Errorf("locking customer %s: %w", customer, err)
			}
			// Only the call's own deadline passed: try again.
		} else if taken {
			break
		} else if version != seen {
			seen, seenSince = version, l.now()
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(backoff.Policy{Base: l.Poll, Max: l.Poll}.Delay(1, 0)):
		}
	}
	held, lose := context.WithCancelCause(ctx)
	// Past this, a waiter may be about to take the lock: stop working
	// under it, whatever the renewal in flight is doing.
	expiry := time.AfterFunc(time.Until(written.Add(l.hold())), func() {
		lose(fmt.Errorf("customer lock %s lost: not renewed for %v", customer, l.hold()))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-held.Done():
				return
			case <-time.After(time.Until(written.Add(l.TTL / 3))):
			}
			sent := time.Now()
			if err := l.renew(held, customer, owner); err != nil {
				// Another may take it now: stop working under it.
				lose(fmt.Errorf("customer lock %s lost: renewing: %w", customer, err))
				return
			}
			written = sent
			// A renewal that succeeded after the timer fired changes
			// nothing: the lock is lost already, and lose runs once.
			expiry.Reset(time.Until(written.Add(l.hold())))
		}
	}()
	return held, func() {
		expiry.Stop()
		lose(nil)
		<-done
		l.release(customer, owner)
	}, nil
}

// hold is how long after it sent the call that last wrote its item a
// holder keeps the lock.
func (l *CustomerLock) hold() time.Duration { return l.TTL * 2 / 3 }

// take puts this caller's item when there is none, or replaces another
// holder's when expired is set and its version is still seen. It returns
// the version of the item that stands in the way otherwise.
func (l *CustomerLock) take(ctx context.Context, customer, owner, seen string, expired bool) (version string, taken bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.TTL/3)
	defer cancel()
	cond := "attribute_not_exists(pk)"
	values := map[string]types.AttributeValue{}
	if expired {
		cond = "attribute_not_exists(pk) OR version = :seen"
		values[":seen"] = str(seen)
	}
	in := &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item: map[string]types.AttributeValue{
			"pk": str("lock#" + customer), "sk": str("lock"),
			"owner": str(owner), "version": str(newToken()),
		},
		ConditionExpression:                 aws.String(cond),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	_, err = l.client.PutItem(ctx, in)
	var held *types.ConditionalCheckFailedException
	if errors.As(err, &held) {
		return stringAttr(held.Item, "version"), false, nil
	}
	return "", err == nil, err
}

// renew changes the version while owner holds the lock; an error means the
// lock is lost (another took it) or cannot be vouched for.
func (l *CustomerLock) renew(ctx context.Context, customer, owner string) error {
	ctx, cancel := context.WithTimeout(ctx, l.TTL/3)
	defer cancel()
	_, err := l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{"pk": str("lock#" + customer), "sk": str("lock")},
		UpdateExpression:          aws.String("SET version = :version"),
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(owner), ":version": str(newToken())},
	})
	return err
}

// release deletes the lock item if owner still holds it. A failed release
// only makes the next holder wait a TTL.
func (l *CustomerLock) release(customer, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{"pk": str("lock#" + customer), "sk": str("lock")},
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(owner)},
	})
}

// newToken names one hold of a lock, or one version of it.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
