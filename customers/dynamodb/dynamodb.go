// Package dynamodb is the customer lookup on DynamoDB, reading and writing
// Storacha's w3infra "consumer" and "customer" tables as they are, so egressd
// can take over from the JavaScript services in place.
//
//	consumer  key subscription (HASH), provider (RANGE); attributes consumer
//	          (the space DID), customer (did:mailto), cause, insertedAt,
//	          updatedAt; GSI consumerV2 on consumer, projecting customer
//	customer  key customer (HASH); attributes account ("stripe:cus_...",
//	          absent for a free-tier customer), product, insertedAt, updatedAt
//
// Customer queries the consumerV2 index by space and keeps a row whose
// provider is one of the providers asked for (the first in their order).
// The index is eventually consistent, so a miss there is checked against the
// table itself, with a consistent read, at the key Provision writes: a space
// provisioned a moment ago is found at once.
//
// Provision writes the consumer row at subscription = SubscriptionID(space),
// the CID of the DAG-CBOR map {consumer: space}, which is how w3infra derives
// subscription IDs, so re-provisioning a space under the same provider
// replaces its customer rather than adding a second row. It writes no cause
// (there is no invocation) and no subscription-table row. Timestamps are
// ISO 8601 in UTC with milliseconds, as JavaScript's toISOString writes them.
package dynamodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	gocid "github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"

	"github.com/egressd/egressd/customers"
)

// DefaultConsumerIndex is the consumer table's index by space.
const DefaultConsumerIndex = "consumerV2"

// maxFilterValues is DynamoDB's limit on the operands of IN.
const maxFilterValues = 100

// Tables names the tables a Store uses.
type Tables struct {
	Consumer string
	Customer string
	// ConsumerIndex is the consumer table's GSI partitioned by consumer
	// (default DefaultConsumerIndex).
	ConsumerIndex string
}

// Store is the DynamoDB customers.Store.
type Store struct {
	client *dynamodb.Client
	tables Tables
	now    func() time.Time
}

var _ customers.Store = (*Store)(nil)

// New returns a Store on existing tables (see internal/awsinit to create them).
func New(client *dynamodb.Client, tables Tables) *Store {
	if tables.ConsumerIndex == "" {
		tables.ConsumerIndex = DefaultConsumerIndex
	}
	return &Store{client: client, tables: tables, now: time.Now}
}

// Customer finds the customer paying for space under one of providers.
func (s *Store) Customer(ctx context.Context, space string, providers []string) (string, error) {
	if len(providers) == 0 {
		return "", customers.ErrNotFound
	}
	if len(providers) > maxFilterValues {
		return "", fmt.Errorf("looking up consumer %s: at most %d providers, got %d", space, maxFilterValues, len(providers))
	}
	rows, err := s.consumerRows(ctx, space, providers)
	if err != nil {
		return "", err
	}
	subscription, err := SubscriptionID(space)
	if err != nil {
		return "", err
	}
	for _, p := range providers {
		// Several rows may name the same provider (a row of Storacha's from
		// before subscription IDs were derived from the space, and one that
		// Provision wrote since): the one at Provision's key is the newer.
		var found *consumerRow
		for i := range rows {
			if rows[i].provider == p && (found == nil || rows[i].subscription == subscription) {
				found = &rows[i]
			}
		}
		if found == nil {
			continue
		}
		if found.customer != "" {
			return found.customer, nil
		}
		// An index that does not project customer: read it from the table.
		c, err := s.consumerAt(ctx, found.subscription, p)
		if err != nil && !errors.Is(err, customers.ErrNotFound) {
			return "", err
		}
		if c != "" {
			return c, nil
		}
	}
	for _, p := range providers {
		c, err := s.consumerAt(ctx, subscription, p)
		if errors.Is(err, customers.ErrNotFound) {
			continue
		}
		return c, err
	}
	return "", customers.ErrNotFound
}

type consumerRow struct{ subscription, provider, customer string }

// consumerRows queries the consumer index for the space's rows under providers.
func (s *Store) consumerRows(ctx context.Context, space string, providers []string) ([]consumerRow, error) {
	values := map[string]types.AttributeValue{":space": str(space)}
	operands := make([]string, len(providers))
	for i, p := range providers {
		operands[i] = ":p" + strconv.Itoa(i)
		values[operands[i]] = str(p)
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Consumer),
		IndexName:                 aws.String(s.tables.ConsumerIndex),
		KeyConditionExpression:    aws.String("#consumer = :space"),
		FilterExpression:          aws.String("#provider IN (" + strings.Join(operands, ", ") + ")"),
		ExpressionAttributeNames:  map[string]string{"#consumer": "consumer", "#provider": "provider"},
		ExpressionAttributeValues: values,
	}
	var rows []consumerRow
	for p := dynamodb.NewQueryPaginator(s.client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("looking up consumer %s: %w", space, err)
		}
		for _, item := range page.Items {
			rows = append(rows, consumerRow{
				subscription: stringAttr(item, "subscription"),
				provider:     stringAttr(item, "provider"),
				customer:     stringAttr(item, "customer"),
			})
		}
	}
	return rows, nil
}

// consumerAt reads the customer of the consumer row at (subscription, provider).
func (s *Store) consumerAt(ctx context.Context, subscription, provider string) (string, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Consumer),
		Key:            map[string]types.AttributeValue{"subscription": str(subscription), "provider": str(provider)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("reading consumer %s/%s: %w", subscription, provider, err)
	}
	if out.Item == nil || stringAttr(out.Item, "customer") == "" {
		return "", customers.ErrNotFound
	}
	return stringAttr(out.Item, "customer"), nil
}

// Account returns the customer's payment account ("" for none).
func (s *Store) Account(ctx context.Context, customer string) (string, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Customer),
		Key:            map[string]types.AttributeValue{"customer": str(customer)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", fmt.Errorf("looking up customer %s: %w", customer, err)
	}
	if out.Item == nil {
		return "", customers.ErrNotFound
	}
	return stringAttr(out.Item, "account"), nil
}

// Provision records that customer pays for space under provider, replacing
// the customer of an earlier Provision of the same space and provider. The
// customer record is created (with no account) if it does not exist; an
// existing one is left as it is.
func (s *Store) Provision(ctx context.Context, space, customer, provider string) error {
	subscription, err := SubscriptionID(space)
	if err != nil {
		return err
	}
	now := str(s.timestamp())
	// The customer first: a consumer row never names a customer that is missing.
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.tables.Customer),
		Item: map[string]types.AttributeValue{
			"customer":   str(customer),
			"insertedAt": now,
			"updatedAt":  now,
		},
		ConditionExpression: aws.String("attribute_not_exists(customer)"),
	})
	var exists *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("provisioning customer %s: %w", customer, err)
	}
	_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.tables.Consumer),
		Key:              map[string]types.AttributeValue{"subscription": str(subscription), "provider": str(provider)},
		UpdateExpression: aws.String("SET #consumer = :space, customer = :customer, updatedAt = :now, insertedAt = if_not_exists(insertedAt, :now)"),
		ExpressionAttributeNames: map[string]string{
			"#consumer": "consumer",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":space":    str(space),
			":customer": str(customer),
			":now":      now,
		},
	})
	if err != nil {
		return fmt.Errorf("provisioning %s under %s: %w", space, provider, err)
	}
	return nil
}

// SetAccount sets the customer's payment account, creating the customer if
// needed. An empty account makes the customer a free-tier one (the attribute
// is removed: the table's account index cannot hold an empty string).
func (s *Store) SetAccount(ctx context.Context, customer, account string) error {
	update := "SET updatedAt = :now, insertedAt = if_not_exists(insertedAt, :now)"
	values := map[string]types.AttributeValue{":now": str(s.timestamp())}
	if account == "" {
		update += " REMOVE account"
	} else {
		update += ", account = :account"
		values[":account"] = str(account)
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.tables.Customer),
		Key:                       map[string]types.AttributeValue{"customer": str(customer)},
		UpdateExpression:          aws.String(update),
		ExpressionAttributeValues: values,
	})
	if err != nil {
		return fmt.Errorf("setting account of %s: %w", customer, err)
	}
	return nil
}

// timestamp is now as JavaScript's Date.toISOString writes it.
func (s *Store) timestamp() string {
	return s.now().UTC().Format("2006-01-02T15:04:05.000Z")
}

// SubscriptionID is the subscription a space is provisioned under, as
// w3infra derives it: the CID (CIDv1, DAG-CBOR, SHA2-256, base32) of the
// DAG-CBOR map {consumer: space}.
func SubscriptionID(space string) (string, error) {
	node, err := qp.BuildMap(basicnode.Prototype.Any, 1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "consumer", qp.String(space))
	})
	if err != nil {
		return "", fmt.Errorf("deriving subscription of %s: %w", space, err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(node, &buf); err != nil {
		return "", fmt.Errorf("deriving subscription of %s: %w", space, err)
	}
	c, err := gocid.Prefix{Version: 1, Codec: gocid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}.Sum(buf.Bytes())
	if err != nil {
		return "", fmt.Errorf("deriving subscription of %s: %w", space, err)
	}
	return c.String(), nil
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// stringAttr is the string attribute name of item, "" when absent or not a string.
func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
