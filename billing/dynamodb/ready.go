package dynamodb

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Ready says whether the ledger table can be reached with these credentials
// now (the worker's /readyz): one DescribeTable, which uses no read or
// write capacity.
func (l *Ledger) Ready(ctx context.Context) error {
	if _, err := l.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(l.tables.Ledger)}); err != nil {
		return fmt.Errorf("reaching table %s: %w", l.tables.Ledger, err)
	}
	return nil
}
