package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/egressd/egressd/billing"
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

var _ billing.DeadLetterQueue = (*Queue)(nil)

// deadLetterLease hides the dead letters a list or a requeue has received
// from each other receive of the same call, so that each comes once; they
// are released (visible again at once) before the call returns.
const deadLetterLease = 5 * time.Minute

// ListDeadLetters returns up to limit messages of the dead-letter queue.
// SQS can only show a message by receiving it: each is received, then
// made visible again, so listing leaves the queue as it was (SQS counts the
// receive in the message's ApproximateReceiveCount).
func (q *Queue) ListDeadLetters(ctx context.Context, limit int) ([]billing.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	url, err := q.deadLetterURL(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	out := []billing.DeadLetter{}
	var held []types.Message
	defer func() { q.release(url, held) }()
	err = q.eachDeadLetter(ctx, url, limit, func(m types.Message) {
		held = append(held, m)
		out = append(out, deadLetter(m))
	})
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	return out, nil
}

// Requeue moves the dead letters with these message IDs (all when ids is
// empty) back to the queue: each is sent to the queue, then deleted from the
// dead-letter queue. A failure between the two leaves it in both, which the
// ledger's dedup on the cause makes harmless. The others are released
// untouched. (SQS's StartMessageMoveTask would move all at once, but cannot
// choose messages, and the local stand-ins tests use do not offer it.)
func (q *Queue) Requeue(ctx context.Context, ids []string) (int, error) {
	url, err := q.deadLetterURL(ctx)
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var (
		held  []types.Message
		moved int
		fail  error
	)
	defer func() { q.release(url, held) }()
	err = q.eachDeadLetter(ctx, url, 0, func(m types.Message) {
		if fail != nil || (len(want) > 0 && !want[aws.ToString(m.MessageId)]) {
			held = append(held, m)
			return
		}
		if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: m.Body}); err != nil {
			fail = fmt.Errorf("sending %s back to the queue: %w", aws.ToString(m.MessageId), err)
			held = append(held, m)
			return
		}
		if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			fail = fmt.Errorf("deleting %s from the dead-letter queue (it is on the queue too): %w", aws.ToString(m.MessageId), err)
			return
		}
		moved++
	})
	if err = errors.Join(err, fail); err != nil {
		return moved, fmt.Errorf("requeue: %w", err)
	}
	return moved, nil
}

// eachDeadLetter receives the dead-letter queue's messages, each once, until
// it is empty or limit (0: no limit) were seen, and hands each to fn.
func (q *Queue) eachDeadLetter(ctx context.Context, url string, limit int, fn func(types.Message)) error {
	seen := 0
	for limit == 0 || seen < limit {
		want := int32(maxBatch)
		if limit > 0 {
			want = int32(min(maxBatch, limit-seen))
		}
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(url),
			MaxNumberOfMessages: want,
			// Long polling asks every SQS server, so an empty answer means
			// empty (a short poll may miss the few messages there are).
			WaitTimeSeconds:   1,
			VisibilityTimeout: seconds(deadLetterLease),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
				types.MessageSystemAttributeNameSentTimestamp,
			},
		})
		if err != nil {
			return err
		}
		if len(out.Messages) == 0 {
			return nil
		}
		for _, m := range out.Messages {
			fn(m)
			seen++
		}
	}
	return nil
}

// release makes the messages visible again at once, so that a worker or the
// next list sees them.
func (q *Queue) release(url string, msgs []types.Message) {
	// Not the caller's context: it may be done, and the messages must not
	// stay hidden for the lease.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range msgs {
		q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
		})
	}
}

// deadLetter describes a message of the dead-letter queue.
func deadLetter(m types.Message) billing.DeadLetter {
	dl := billing.DeadLetter{ID: aws.ToString(m.MessageId)}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		dl.Receives = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		dl.EnqueuedAt = time.UnixMilli(ms).UTC()
	}
	billing.DecodeDeadLetter(&dl, []byte(aws.ToString(m.Body)))
	return dl
}
