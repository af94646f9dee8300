package dynamodb

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Ready says whether the consumer table, asked on every invocation, can be
// reached with these credentials now (/readyz): one DescribeTable, which
// uses no read or write capacity.
func (s *Store) Ready(ctx context.Context) error {
	if _, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.tables.Consumer)}); err != nil {
		return fmt.Errorf("reaching table %s: %w", s.tables.Consumer, err)
	}
	return nil
}
