package awsinit

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Bucket creates the receipts bucket unless this account already owns it.
func Bucket(ctx context.Context, client *s3.Client, name string, opts Options) error {
	opts = opts.withDefaults()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	// us-east-1 is S3's default location and the one region that refuses to
	// be named as a location constraint.
	if region := client.Options().Region; region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err := client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	var taken *types.BucketAlreadyExists
	switch {
	case err == nil:
		opts.Log.Info("created bucket", "bucket", name)
		return nil
	case errors.As(err, &owned):
		opts.Log.Info("bucket exists", "bucket", name)
		return nil
	case errors.As(err, &taken):
		return fmt.Errorf("creating bucket %s: the name belongs to another AWS account; choose another", name)
	default:
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
}
