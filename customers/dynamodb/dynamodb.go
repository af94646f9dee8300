// Package dynamodb is the customer lookup on DynamoDB, reading and writing
// Storacha's w3infra "consumer", "subscription" and "customer" tables as
// they are, so egressd can take over from the JavaScript services in place.
//
//	consumer      key subscription (HASH), provider (RANGE); attributes
//	              consumer (the space DID), customer (did:mailto), cause,
//	              insertedAt; GSI consumerV2 on consumer, projecting customer
//	subscription  key subscription (HASH), provider (RANGE); attributes
//	              customer, cause, insertedAt
//	customer      key customer (HASH); attributes account ("stripe:cus_...",
//	              absent for a free-tier customer), product (required by
//	              Storacha's decoder), insertedAt, updatedAt
//
// Customer queries the consumerV2 index by space and keeps a row whose
// provider is one of the providers asked for (the first in their order).
// The index is eventually consistent, so a miss there is checked against the
// table itself, with a consistent read, at the key Provision writes: a space
// provisioned a moment ago is found at once.
//
// ProvisionSpace writes what Storacha's provider/add writes (w3infra
// upload-api/stores/provisions.js): a subscription row and a consumer row at
// subscription = SubscriptionID(space), in one transaction, and never over
// a row of another customer or provider (see provision.go). SetCustomer
// writes the customer row the way w3infra's customer store does, never
// without a product (see customer.go). Timestamps are ISO 8601 in UTC with
// milliseconds, as JavaScript's toISOString writes them.
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
	// Subscription is written with every consumer row, as Storacha does
	// (default SubscriptionTable(Consumer)).
	Subscription string
	// ConsumerIndex is the consumer table's GSI partitioned by consumer
	// (default DefaultConsumerIndex).
	ConsumerIndex string
}

// SubscriptionTable names the subscription table that goes with a consumer
// table: w3infra keeps "<stage>-w3infra-subscription" beside
// "<stage>-w3infra-consumer", so it is the consumer table's name with
// "subscription" in place of its trailing "consumer", and "<name>-subscription"
// for a consumer table named otherwise: the rule of awsconfig.Tables'
// default, for a Store given no Subscription.
func SubscriptionTable(consumer string) string {
	if prefix, ok := strings.CutSuffix(consumer, "consumer"); ok {
		return prefix + "subscription"
	}
	return consumer + "-subscription"
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
	if tables.Subscription == "" {
		tables.Subscription = SubscriptionTable(tables.Consumer)
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

// timestamp is now as JavaScript's Date.toISOString writes it.
func (s *Store) timestamp() string {
	return s.now().UTC().Format("2006-01-02T15:04:05.000Z")
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// stringAttr is the string attribute name of item, "" when absent or not a string.
func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
