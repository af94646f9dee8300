package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DeadLetters counts the messages in the queue's dead-letter queue: the one
// its redrive policy names, where SQS moves a message received too often.
func (q *Queue) DeadLetters(ctx context.Context) (int, error) {
	url, err := q.deadLetterURL(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter count: %w", err)
	}
	n, err := q.count(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("dead-letter count: %w", err)
	}
	return n, nil
}

// deadLetterURL finds the dead-letter queue from the redrive policy.
func (q *Queue) deadLetterURL(ctx context.Context) (string, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return "", err
	}
	raw := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if raw == "" {
		return "", errors.New("the queue has no redrive policy, so poison messages are never set aside: run `egressd aws init`")
	}
	var policy struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(raw), &policy); err != nil {
		return "", fmt.Errorf("reading the redrive policy %q: %w", raw, err)
	}
	// arn:aws:sqs:REGION:ACCOUNT:NAME
	parts := strings.Split(policy.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[5] == "" {
		return "", fmt.Errorf("the redrive policy names %q, not an SQS queue ARN", policy.DeadLetterTargetArn)
	}
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5])}
	if parts[4] != "" {
		in.QueueOwnerAWSAccountId = aws.String(parts[4])
	}
	url, err := q.client.GetQueueUrl(ctx, in)
	if err != nil {
		return "", fmt.Errorf("finding the dead-letter queue %s: %w", parts[5], err)
	}
	return aws.ToString(url.QueueUrl), nil
}
