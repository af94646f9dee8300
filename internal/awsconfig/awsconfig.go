// Package awsconfig loads the AWS configuration egressd's production backends
// share, builds their S3, SQS and DynamoDB clients, and reads the backend URLs
// that select them: s3://BUCKET[/PREFIX], sqs://QUEUE_NAME and
// dynamodb://[TABLE_PREFIX] (see urls.go).
//
// Configuration comes from the standard AWS chain (environment, shared config
// and credentials files, SSO, web identity, container and instance roles),
// so the same binary talks to AWS or to local stand-ins: AWS_ENDPOINT_URL
// points every client elsewhere, and AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SQS
// and AWS_ENDPOINT_URL_DYNAMODB point one service elsewhere (the SDK reads
// these when each client is built; they win over AWS_ENDPOINT_URL).
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// maxIdleConnsPerHost keeps connections to one endpoint open for reuse. The
// SDK's default (10) is below the number of concurrent requests the receipt
// store and the queue make, which would churn connections under load.
const maxIdleConnsPerHost = 128

// Load reads the AWS configuration from the standard chain. It fails when no
// region is configured, because every egressd backend needs one and the SDK
// would otherwise only fail at the first request.
func Load(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
	})
	opts := append([]func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("loading AWS configuration: no region: set AWS_REGION (or a region in the AWS profile)")
	}
	return cfg, nil
}

// NewS3 returns an S3 client. pathStyle chooses path-style addressing
// (http://host/BUCKET/KEY, which MinIO and most S3 stand-ins need) over
// virtual-hosted style (http://BUCKET.host/KEY); nil means path-style exactly
// when a custom endpoint is configured.
func NewS3(cfg aws.Config, pathStyle *bool) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		// The SDK has resolved BaseEndpoint (config or AWS_ENDPOINT_URL[_S3])
		// before it applies these options.
		if pathStyle != nil {
			o.UsePathStyle = *pathStyle
		} else {
			o.UsePathStyle = o.BaseEndpoint != nil
		}
	})
}

// NewSQS returns an SQS client.
func NewSQS(cfg aws.Config) *sqs.Client { return sqs.NewFromConfig(cfg) }

// NewDynamoDB returns a DynamoDB client. With a custom endpoint it does not
// check the x-amz-crc32 header of responses: DynamoDB Local (and other
// stand-ins) leave it off error responses, and the SDK then logs a spurious
// warning for every failed condition, which the ledger meets on every
// duplicate (aws/aws-sdk-go-v2#3545). DynamoDB itself always sends it, and
// it is checked there.
func NewDynamoDB(cfg aws.Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.DisableValidateResponseChecksum = o.BaseEndpoint != nil
	})
}
