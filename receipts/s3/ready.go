package s3

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Ready says whether the bucket can be reached with these credentials now
// (/readyz): one HeadBucket, which costs no more than a GET and writes
// nothing.
func (s *Store) Ready(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("reaching bucket %s: %w", s.bucket, err)
	}
	return nil
}
