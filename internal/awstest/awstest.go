// Package awstest points the AWS SDK at the local stand-ins for S3, SQS and
// DynamoDB that scripts/services.sh runs (MinIO, fauxqs, DynamoDB Local), the
// way an operator would: through AWS_ENDPOINT_URL_S3, _SQS and _DYNAMODB.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/testenv"
)

// Config returns the AWS configuration for the local services, loaded by
// awsconfig.Load with the per-service endpoint variables set for the test
// (so the test cannot run in parallel). It fails the test when a service is
// not running.
func Config(t testing.TB) aws.Config {
	t.Helper()
	for _, svc := range []string{testenv.S3, testenv.SQS, testenv.DynamoDB} {
		u := testenv.URL(t, svc)
		testenv.Reachable(t, u)
		t.Setenv("AWS_ENDPOINT_URL_"+svc, u)
	}
	cfg, err := awsconfig.Load(context.Background())
	if err != nil {
		t.Fatalf("loading AWS configuration: %v", err)
	}
	return cfg
}

// Name returns a fresh resource name, prefix plus a random suffix, valid as
// a bucket, queue or table name (lowercase letters, digits and '-').
func Name(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return "egressd-test-" + prefix + "-" + hex.EncodeToString(b)
}
