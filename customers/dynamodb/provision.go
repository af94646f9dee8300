package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/customers"
)

// provisionAttempts bounds how often ProvisionSpace reads and writes again
// when a concurrent writer changed a row between its read and its write.
const provisionAttempts = 3

// Provision is ProvisionSpace with customers.DefaultProduct for a new customer.
func (s *Store) Provision(ctx context.Context, space, customer, provider string) error {
	return s.ProvisionSpace(ctx, customers.Provisioning{
		Space: space, Customer: customer, Provider: provider, NewCustomerProduct: customers.DefaultProduct,
	})
}

// ProvisionSpace writes what Storacha's provider/add writes: a subscription
// row {subscription, provider, customer, cause, insertedAt} and a consumer
// row {subscription, provider, consumer, customer, cause, insertedAt}, at
// subscription = SubscriptionID(space) and cause = ProvisionCause, in one
// transaction. Storacha never moves a space: its provider/add refuses a
// space that has any provider, and its tables write a row only where none
// is. So does this: a row of the space for another customer or under another
// provider, in either table, is left alone and reported as an
// *customers.AlreadyProvisionedError; rows of this very provisioning are
// kept as they are (a row of an older egressd, without cause, gets one).
//
// The customer record is checked in the same transaction: it must have a
// product, and one is created with p.NewCustomerProduct when the customer
// has none (customers.ErrNoProduct when that is empty).
func (s *Store) ProvisionSpace(ctx context.Context, p customers.Provisioning) error {
	subscription, err := SubscriptionID(p.Space)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		items, err := s.provisionPlan(ctx, p, subscription)
		if err != nil || items == nil {
			return err
		}
		_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		var canceled *types.TransactionCanceledException
		if errors.As(err, &canceled) && attempt < provisionAttempts {
			// Someone wrote one of these rows since they were read: read
			// again, which names them if they are another customer's.
			continue
		}
		if err != nil {
			return fmt.Errorf("provisioning %s for %s under %s: %w", p.Space, p.Customer, p.Provider, err)
		}
		return nil
	}
}

// provisionPlan reads the space's rows and the customer's and returns the
// transaction that completes the provisioning: nil when there is nothing to
// write, an error when it must not be written.
func (s *Store) provisionPlan(ctx context.Context, p customers.Provisioning, subscription string) ([]types.TransactWriteItem, error) {
	consumers, err := s.spaceConsumerRows(ctx, p.Space, subscription)
	if err != nil {
		return nil, err
	}
	subscriptions, err := s.query(ctx, s.tables.Subscription, subscription)
	if err != nil {
		return nil, err
	}
	var consumerRow, subscriptionRow map[string]types.AttributeValue
	legacy := false
	for _, row := range consumers {
		if err := customers.CheckHolder(p, stringAttr(row, "customer"), stringAttr(row, "provider"), "consumer"); err != nil {
			return nil, err
		}
		if stringAttr(row, "subscription") == subscription {
			consumerRow = row
		} else {
			legacy = true
		}
	}
	for _, row := range subscriptions {
		if err := customers.CheckHolder(p, stringAttr(row, "customer"), stringAttr(row, "provider"), "subscription"); err != nil {
			return nil, err
		}
		subscriptionRow = row
	}
	if consumerRow == nil && legacy {
		// Storacha's own row, from before subscription IDs were derived
		// from the space: this provisioning exists, under its own key.
		return nil, s.checkProduct(ctx, p)
	}
	customerItem, err := s.customerPlan(ctx, p)
	if err != nil {
		return nil, err
	}

	// Both rows carry the cause of the provisioning: the one a row already
	// has (Storacha's invocation, say), else egressd's.
	cause := stringAttr(consumerRow, "cause")
	if cause == "" {
		cause = stringAttr(subscriptionRow, "cause")
	}
	if cause == "" {
		if cause, err = ProvisionCause(p.Space, p.Customer, p.Provider); err != nil {
			return nil, err
		}
	}
	now := str(s.timestamp())
	key := map[string]types.AttributeValue{"subscription": str(subscription), "provider": str(p.Provider)}
	ownRow := &types.ConditionCheck{
		ConditionExpression:       aws.String("customer = :customer"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":customer": str(p.Customer)},
	}
	var items []types.TransactWriteItem
	writes := false

	switch {
	case subscriptionRow == nil:
		writes = true
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.tables.Subscription),
			Item: map[string]types.AttributeValue{
				"subscription": str(subscription),
				"provider":     str(p.Provider),
				"customer":     str(p.Customer),
				"cause":        str(cause),
				"insertedAt":   now,
			},
			ConditionExpression: aws.String("attribute_not_exists(subscription)"),
		}})
	default:
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.tables.Subscription), Key: key,
			ConditionExpression: ownRow.ConditionExpression, ExpressionAttributeValues: ownRow.ExpressionAttributeValues,
		}})
	}

	switch {
	case consumerRow == nil:
		writes = true
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.tables.Consumer),
			Item: map[string]types.AttributeValue{
				"subscription": str(subscription),
				"provider":     str(p.Provider),
				"consumer":     str(p.Space),
				"customer":     str(p.Customer),
				"cause":        str(cause),
				"insertedAt":   now,
			},
			ConditionExpression: aws.String("attribute_not_exists(subscription)"),
		}})
	case stringAttr(consumerRow, "cause") == "" || stringAttr(consumerRow, "insertedAt") == "":
		// A row an older egressd wrote: Storacha's decoders want a cause.
		writes = true
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(s.tables.Consumer), Key: key,
			UpdateExpression:    aws.String("SET cause = if_not_exists(cause, :cause), insertedAt = if_not_exists(insertedAt, :now)"),
			ConditionExpression: aws.String("customer = :customer"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":customer": str(p.Customer), ":cause": str(cause), ":now": now,
			},
		}})
	default:
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.tables.Consumer), Key: key,
			ConditionExpression: ownRow.ConditionExpression, ExpressionAttributeValues: ownRow.ExpressionAttributeValues,
		}})
	}

	if customerItem.Put != nil || customerItem.Update != nil {
		writes = true
	}
	items = append(items, customerItem)
	if !writes {
		return nil, nil
	}
	return items, nil
}

// customerPlan is the customer record's part of the provisioning: a check
// that it has a product, or the write that creates it or gives it one.
func (s *Store) customerPlan(ctx context.Context, p customers.Provisioning) (types.TransactWriteItem, error) {
	row, err := s.customerRow(ctx, p.Customer)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	key := map[string]types.AttributeValue{"customer": str(p.Customer)}
	switch {
	case stringAttr(row, "product") != "":
		return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.tables.Customer), Key: key,
			ConditionExpression: aws.String("attribute_exists(product)"),
		}}, nil
	case p.NewCustomerProduct == "":
		return types.TransactWriteItem{}, s.noProduct(p.Customer, row)
	case row == nil:
		now := str(s.timestamp())
		return types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.tables.Customer),
			Item: map[string]types.AttributeValue{
				"customer":   str(p.Customer),
				"product":    str(p.NewCustomerProduct),
				"insertedAt": now,
				"updatedAt":  now,
			},
			ConditionExpression: aws.String("attribute_not_exists(customer)"),
		}}, nil
	default:
		return types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(s.tables.Customer), Key: key,
			UpdateExpression:          aws.String("SET product = :product, updatedAt = :now, insertedAt = if_not_exists(insertedAt, :now)"),
			ConditionExpression:       aws.String("attribute_exists(customer) AND attribute_not_exists(product)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":product": str(p.NewCustomerProduct), ":now": str(s.timestamp())},
		}}, nil
	}
}

// checkProduct is customerPlan's rule alone, for a provisioning that needs
// no write: with no product to give, the customer must have one.
func (s *Store) checkProduct(ctx context.Context, p customers.Provisioning) error {
	if p.NewCustomerProduct != "" {
		return nil
	}
	row, err := s.customerRow(ctx, p.Customer)
	if err != nil {
		return err
	}
	if stringAttr(row, "product") == "" {
		return s.noProduct(p.Customer, row)
	}
	return nil
}

func (s *Store) noProduct(customer string, row map[string]types.AttributeValue) error {
	if row == nil {
		return fmt.Errorf("%w: %s has no record in table %s", customers.ErrNoProduct, customer, s.tables.Customer)
	}
	return fmt.Errorf("%w: the record of %s in table %s has no product", customers.ErrNoProduct, customer, s.tables.Customer)
}

// spaceConsumerRows are the space's consumer rows: those at its subscription
// ID, read consistently, and any other the index knows (Storacha's rows from
// before subscription IDs were derived from the space), with their customer.
func (s *Store) spaceConsumerRows(ctx context.Context, space, subscription string) ([]map[string]types.AttributeValue, error) {
	rows, err := s.query(ctx, s.tables.Consumer, subscription)
	if err != nil {
		return nil, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.tables.Consumer),
		IndexName:                 aws.String(s.tables.ConsumerIndex),
		KeyConditionExpression:    aws.String("#consumer = :space"),
		ExpressionAttributeNames:  map[string]string{"#consumer": "consumer"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":space": str(space)},
	}
	for pages := dynamodb.NewQueryPaginator(s.client, in); pages.HasMorePages(); {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("looking up consumer %s: %w", space, err)
		}
		for _, item := range page.Items {
			if stringAttr(item, "subscription") == subscription {
				continue // read above, consistently
			}
			if stringAttr(item, "customer") == "" {
				// An index that does not project customer.
				c, err := s.consumerAt(ctx, stringAttr(item, "subscription"), stringAttr(item, "provider"))
				if errors.Is(err, customers.ErrNotFound) {
					continue // gone since the index saw it
				}
				if err != nil {
					return nil, err
				}
				item["customer"] = str(c)
			}
			rows = append(rows, item)
		}
	}
	return rows, nil
}

// query reads the rows of table at subscription, under every provider,
// consistently.
func (s *Store) query(ctx context.Context, table, subscription string) ([]map[string]types.AttributeValue, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("subscription = :subscription"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":subscription": str(subscription)},
		ConsistentRead:            aws.Bool(true),
	}
	var rows []map[string]types.AttributeValue
	for pages := dynamodb.NewQueryPaginator(s.client, in); pages.HasMorePages(); {
		page, err := pages.NextPage(ctx)
		var missing *types.ResourceNotFoundException
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("reading subscription %s: no table %s (create the tables with `egressd aws init --tables ...`)", subscription, table)
		}
		if err != nil {
			return nil, fmt.Errorf("reading subscription %s in %s: %w", subscription, table, err)
		}
		rows = append(rows, page.Items...)
	}
	return rows, nil
}

// customerRow reads the customer's record; nil when there is none.
func (s *Store) customerRow(ctx context.Context, customer string) (map[string]types.AttributeValue, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.tables.Customer),
		Key:            map[string]types.AttributeValue{"customer": str(customer)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("looking up customer %s: %w", customer, err)
	}
	return out.Item, nil
}
