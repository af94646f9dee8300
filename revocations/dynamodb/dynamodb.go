// Package dynamodb is the revocation store on DynamoDB, in a table laid out
// as Storacha's w3infra "revocation" table, so egressd and w3up's upload
// service can share one:
//
//	revocation  key revoke (HASH): the CID of the revoked delegation;
//	            one more attribute per revoker, named by its DID, holding
//	            the map {cause: <CID of the ucan/revoke invocation>}
//
// Revocations reads with BatchGetItem and strongly consistent reads, so a
// revocation recorded by any replica is seen by every replica's next
// lookup.
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/internal/backoff"
	"github.com/egressd/egressd/revocations"
)

// KeyAttribute is the table's partition key.
const KeyAttribute = "revoke"

// batchGetLimit is DynamoDB's limit on the keys of one BatchGetItem.
const batchGetLimit = 100

// maxUnprocessedRetries bounds the retries of keys DynamoDB leaves
// unprocessed under throttling, before the lookup fails.
const maxUnprocessedRetries = 8

// unprocessedBackoff is the wait before taking again the keys DynamoDB left
// unprocessed: from 10ms, doubling up to the wait before the last retry.
var unprocessedBackoff = backoff.Policy{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond << (maxUnprocessedRetries - 1)}

// Store is the DynamoDB revocations.Store.
type Store struct {
	client *dynamodb.Client
	table  string
}

var _ revocations.Store = (*Store)(nil)

// New returns a Store on an existing table (see internal/awsinit to create it).
func New(client *dynamodb.Client, table string) *Store {
	return &Store{client: client, table: table}
}

// Revoke adds r's revoker to the delegation's row, keeping its first cause
// when it revoked the delegation before. Other revokers' attributes are left
// as they are.
func (s *Store) Revoke(ctx context.Context, r revocations.Revocation) error {
	if r.Delegation == "" || r.Scope == "" || r.Cause == "" {
		return errors.New("recording a revocation: delegation, scope and cause are required")
	}
	if r.Scope == KeyAttribute {
		return fmt.Errorf("recording a revocation: %q is not a DID", r.Scope)
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: r.Delegation}},
		UpdateExpression:         aws.String("SET #scope = if_not_exists(#scope, :meta)"),
		ExpressionAttributeNames: map[string]string{"#scope": r.Scope},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":meta": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"cause": &types.AttributeValueMemberS{Value: r.Cause},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("recording the revocation of %s by %s: %w", r.Delegation, r.Scope, err)
	}
	return nil
}

// Revocations returns the revocations of any of the delegations: one
// BatchGetItem per hundred distinct CIDs.
func (s *Store) Revocations(ctx context.Context, delegations []string) ([]revocations.Revocation, error) {
	// BatchGetItem refuses a request that names one key twice.
	seen := make(map[string]bool, len(delegations))
	var keys []map[string]types.AttributeValue
	for _, d := range delegations {
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		keys = append(keys, map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: d}})
	}
	var found []revocations.Revocation
	for start := 0; start < len(keys); start += batchGetLimit {
		items, err := s.batchGet(ctx, keys[start:min(start+batchGetLimit, len(keys))])
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			found = append(found, fromItem(item)...)
		}
	}
	return found, nil
}

// batchGet reads the items at keys, retrying with backoff what DynamoDB
// leaves unprocessed.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	request := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	for attempt := 0; ; attempt++ {
		out, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
		if err != nil {
			return nil, fmt.Errorf("looking up revocations: %w", err)
		}
		items = append(items, out.Responses[s.table]...)
		left, ok := out.UnprocessedKeys[s.table]
		if !ok || len(left.Keys) == 0 {
			return items, nil
		}
		if attempt >= maxUnprocessedRetries {
			return nil, fmt.Errorf("looking up revocations: DynamoDB left %d keys unprocessed after %d attempts", len(left.Keys), attempt+1)
		}
		request = map[string]types.KeysAndAttributes{s.table: left}
		if err := unprocessedBackoff.Wait(ctx, attempt+1); err != nil {
			return nil, fmt.Errorf("looking up revocations: %w", err)
		}
	}
}

// fromItem reads a row: every map attribute holding a cause is one
// revoker's revocation, whatever else the row holds.
func fromItem(item map[string]types.AttributeValue) []revocations.Revocation {
	key, ok := item[KeyAttribute].(*types.AttributeValueMemberS)
	if !ok {
		return nil
	}
	var found []revocations.Revocation
	for name, v := range item {
		meta, ok := v.(*types.AttributeValueMemberM)
		if name == KeyAttribute || !ok {
			continue
		}
		cause, ok := meta.Value["cause"].(*types.AttributeValueMemberS)
		if !ok {
			continue
		}
		found = append(found, revocations.Revocation{Delegation: key.Value, Scope: name, Cause: cause.Value})
	}
	return found
}
