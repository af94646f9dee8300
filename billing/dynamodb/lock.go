package dynamodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// CustomerLock is a lock per customer in the ledger table, so that workers
// on different machines never call Stripe for one customer at once (Stripe
// allows one meter-event call per customer and meter, and answers a second
// with 429). The item is pk "lock#<customer>", sk "lock", with the holder
// and an expiry: a holder that dies loses the lock after TTL, and a live
// one renews it every TTL/3 for as long as it works. Costs two writes per
// hold (take and release) and one per renewal.
type CustomerLock struct {
	client *dynamodb.Client
	table  string
	// TTL bounds how long a dead holder keeps a customer waiting.
	TTL time.Duration
	// Poll is the wait between tries while another holds the lock (with jitter).
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

// Lock waits until this caller holds customer's lock, or ctx ends.
func (l *CustomerLock) Lock(ctx context.Context, customer string) (unlock func(), err error) {
	owner := newOwner()
	for {
		ok, err := l.take(ctx, customer, owner)
		if err != nil {
			return nil, fmt.Errorf("locking customer %s: %w", customer, err)
		}
		if ok {
			break
		}
		wait := l.Poll/2 + mathrand.N(l.Poll+1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	renewCtx, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				l.renew(renewCtx, customer, owner)
			}
		}
	}()
	return func() {
		stopRenewing()
		<-done
		l.release(customer, owner)
	}, nil
}

// take puts the lock item unless another holder's is there and unexpired.
func (l *CustomerLock) take(ctx context.Context, customer, owner string) (bool, error) {
	now := l.now()
	_, err := l.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.table),
		Item: map[string]types.AttributeValue{
			"pk": str("lock#" + customer), "sk": str("lock"),
			"owner": str(owner), "expires": num(now.Add(l.TTL).UnixMilli()),
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires < :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.UnixMilli())},
	})
	var held *types.ConditionalCheckFailedException
	if errors.As(err, &held) {
		return false, nil
	}
	return err == nil, err
}

// renew pushes the expiry on while owner holds the lock.
func (l *CustomerLock) renew(ctx context.Context, customer, owner string) {
	l.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{"pk": str("lock#" + customer), "sk": str("lock")},
		UpdateExpression:          aws.String("SET expires = :expires"),
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(owner), ":expires": num(l.now().Add(l.TTL).UnixMilli())},
	})
}

// release deletes the lock item if owner still holds it. A failed release
// only makes the next holder wait for the expiry.
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

// newOwner names one hold of a lock.
func newOwner() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
