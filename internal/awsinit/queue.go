package awsinit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/egressd/egressd/internal/awsconfig"
)

// retention keeps messages for SQS's maximum, 14 days: an event must outlive
// any outage of the worker or of Stripe (which accepts events 35 days back).
const retention = "1209600"

// Queue creates the event queue and its dead-letter queue, and sets the
// queue's redrive policy to the dead-letter queue with opts.MaxReceives. An
// existing queue keeps its other settings but gets the redrive policy. It
// returns the queue's URL.
//
// The visibility timeout is left at the queue's default: egressd's worker
// names its own on every receive.
func Queue(ctx context.Context, client *sqs.Client, q awsconfig.Queue, opts Options) (string, error) {
	opts = opts.withDefaults()
	dlqURL, err := ensureQueue(ctx, client, q.DeadLetter, map[string]string{
		string(types.QueueAttributeNameMessageRetentionPeriod): retention,
	}, opts)
	if err != nil {
		return "", err
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(dlqURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("reading the ARN of queue %s: %w", q.DeadLetter, err)
	}
	dlqARN := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	if dlqARN == "" {
		return "", fmt.Errorf("reading the ARN of queue %s: none returned", q.DeadLetter)
	}
	policy, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": dlqARN,
		"maxReceiveCount":     strconv.Itoa(opts.MaxReceives),
	})
	if err != nil {
		return "", err
	}
	return ensureQueue(ctx, client, q.Name, map[string]string{
		string(types.QueueAttributeNameMessageRetentionPeriod): retention,
		string(types.QueueAttributeNameRedrivePolicy):          string(policy),
	}, opts)
}

// ensureQueue creates the queue with attrs, or sets attrs on the queue that
// already exists under name with other settings.
func ensureQueue(ctx context.Context, client *sqs.Client, name string, attrs map[string]string, opts Options) (string, error) {
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err == nil {
		// CreateQueue also answers this way for a queue that exists with the same settings.
		opts.Log.Info("queue ready", "queue", name, "url", aws.ToString(out.QueueUrl))
		return aws.ToString(out.QueueUrl), nil
	}
	var exists *types.QueueNameExists
	var api smithy.APIError
	if !errors.As(err, &exists) && !(errors.As(err, &api) && api.ErrorCode() == "QueueAlreadyExists") {
		return "", fmt.Errorf("creating queue %s: %w", name, err)
	}
	url, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("finding queue %s: %w", name, err)
	}
	if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url.QueueUrl, Attributes: attrs}); err != nil {
		return "", fmt.Errorf("updating queue %s: %w", name, err)
	}
	opts.Log.Info("queue exists, settings updated", "queue", name, "url", aws.ToString(url.QueueUrl))
	return aws.ToString(url.QueueUrl), nil
}
