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

// SetAccount is SetCustomer with customers.DefaultProduct for a new customer.
func (s *Store) SetAccount(ctx context.Context, customer, account string) error {
	_, err := s.SetCustomer(ctx, customers.CustomerUpdate{Customer: customer, Account: account, DefaultProduct: customers.DefaultProduct})
	return err
}

// SetCustomer sets the customer's payment account, creating the customer if
// needed, in one conditional update that keeps every other attribute (a
// product, details, reservedCapacity, insertedAt) as w3infra's customer
// store left it. The row it leaves always has a product, as w3infra's
// customer decoder requires: the one it had, else u.Product or
// u.DefaultProduct; with neither, a row without one is refused
// (customers.ErrNoProduct). An empty account removes the attribute (the
// table's account index cannot hold an empty string), as w3infra writes a
// free-tier customer.
func (s *Store) SetCustomer(ctx context.Context, u customers.CustomerUpdate) (customers.Record, error) {
	update := "SET updatedAt = :now, insertedAt = if_not_exists(insertedAt, :now)"
	values := map[string]types.AttributeValue{":now": str(s.timestamp())}
	var condition *string
	switch {
	case u.Product != "":
		update += ", product = if_not_exists(product, :product)"
		values[":product"] = str(u.Product)
		condition = aws.String("attribute_not_exists(product) OR product = :product")
	case u.DefaultProduct != "":
		update += ", product = if_not_exists(product, :product)"
		values[":product"] = str(u.DefaultProduct)
	default:
		condition = aws.String("attribute_exists(product)")
	}
	if u.Account == "" {
		update += " REMOVE account"
	} else {
		update += ", account = :account"
		values[":account"] = str(u.Account)
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.tables.Customer),
		Key:                                 map[string]types.AttributeValue{"customer": str(u.Customer)},
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 condition,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		row := failed.Item
		if row == nil {
			// A DynamoDB that does not return the row that failed the
			// condition: read it (nil again when there is none).
			if row, err = s.customerRow(ctx, u.Customer); err != nil {
				return customers.Record{}, err
			}
		}
		if product := stringAttr(row, "product"); product != "" {
			return customers.Record{}, fmt.Errorf("%w: %s has product %s, not %s", customers.ErrProductMismatch, u.Customer, product, u.Product)
		}
		return customers.Record{}, s.noProduct(u.Customer, row)
	}
	if err != nil {
		return customers.Record{}, fmt.Errorf("setting account of %s: %w", u.Customer, err)
	}
	return customers.Record{
		Customer: u.Customer,
		Account:  stringAttr(out.Attributes, "account"),
		Product:  stringAttr(out.Attributes, "product"),
	}, nil
}
