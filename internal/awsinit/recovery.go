package awsinit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// enableRecovery turns on point-in-time recovery for a table just created,
// as Storacha's stack does for its tables. DynamoDB may refuse for a short
// while after creation (ContinuousBackupsUnavailable): it is asked again
// until tableActiveTimeout. A server without the operation (DynamoDB
// Local) is logged, not an error: the table is otherwise the same.
func enableRecovery(ctx context.Context, client *dynamodb.Client, name string, opts Options) error {
	ctx, cancel := context.WithTimeout(ctx, tableActiveTimeout)
	defer cancel()
	for {
		_, err := client.UpdateContinuousBackups(ctx, &dynamodb.UpdateContinuousBackupsInput{
			TableName: aws.String(name),
			PointInTimeRecoverySpecification: &types.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: aws.Bool(true),
			},
		})
		var unavailable *types.ContinuousBackupsUnavailableException
		switch {
		case err == nil:
			opts.Log.Info("point-in-time recovery enabled", "table", name)
			return nil
		case unsupported(err):
			opts.Log.Warn("point-in-time recovery could not be enabled: this DynamoDB server does not support it", "table", name)
			return nil
		case !errors.As(err, &unavailable):
			return fmt.Errorf("enabling point-in-time recovery on table %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("enabling point-in-time recovery on table %s: %w (last: %v)", name, ctx.Err(), err)
		case <-time.After(tableActivePollDelay):
		}
	}
}

// warnWithoutRecovery logs a table that exists without point-in-time
// recovery (one made by hand, or by an aws init interrupted after creating
// it): egressd does not change a table that exists, so it only says so.
// Not knowing (no permission, no such operation) is logged at debug level.
func warnWithoutRecovery(ctx context.Context, client *dynamodb.Client, tb table, opts Options) {
	if !tb.layout.PointInTimeRecovery {
		return
	}
	out, err := client.DescribeContinuousBackups(ctx, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(tb.name)})
	if err != nil {
		opts.Log.Debug("point-in-time recovery not read", "table", tb.name, "err", err)
		return
	}
	d := out.ContinuousBackupsDescription
	if d == nil || d.PointInTimeRecoveryDescription == nil ||
		d.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus != types.PointInTimeRecoveryStatusEnabled {
		opts.Log.Warn("point-in-time recovery is off; egressd does not change a table that exists: turn it on with `aws dynamodb update-continuous-backups`",
			"table", tb.name, "role", tb.role)
	}
}

// unsupported reports the error of a server that lacks the operation
// (DynamoDB Local has no backups).
func unsupported(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException"
}
