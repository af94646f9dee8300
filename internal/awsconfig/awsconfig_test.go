package awsconfig

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// clearAWSEnv leaves only what each test sets, so the machine's own AWS
// configuration cannot leak in.
func clearAWSEnv(t *testing.T) {
	for _, v := range []string{
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_PROFILE", "AWS_DEFAULT_REGION",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testtesttest")
}

func TestEndpointsFromEnvironment(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name            string
		env             map[string]string
		pathStyle       *bool
		s3, sqs, dynamo string // expected BaseEndpoint, "" for AWS's own
		wantPathStyle   bool
	}{
		{name: "AWS itself", wantPathStyle: false},
		{name: "one endpoint for all", env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
			s3: "http://127.0.0.1:4566", sqs: "http://127.0.0.1:4566", dynamo: "http://127.0.0.1:4566", wantPathStyle: true},
		{name: "per service", env: map[string]string{
			"AWS_ENDPOINT_URL":          "http://127.0.0.1:1",
			"AWS_ENDPOINT_URL_S3":       "http://127.0.0.1:9000",
			"AWS_ENDPOINT_URL_SQS":      "http://127.0.0.1:4566",
			"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
		}, s3: "http://127.0.0.1:9000", sqs: "http://127.0.0.1:4566", dynamo: "http://127.0.0.1:8000", wantPathStyle: true},
		{name: "S3 only", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000"},
			s3: "http://127.0.0.1:9000", wantPathStyle: true},
		{name: "custom endpoint, virtual-hosted forced", env: map[string]string{"AWS_ENDPOINT_URL_S3": "http://s3.example.com"},
			pathStyle: &no, s3: "http://s3.example.com", wantPathStyle: false},
		{name: "AWS, path-style forced", pathStyle: &yes, wantPathStyle: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearAWSEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Region != "eu-west-1" {
				t.Errorf("region = %q, want eu-west-1", cfg.Region)
			}
			s3 := NewS3(cfg, tc.pathStyle).Options()
			if got := aws.ToString(s3.BaseEndpoint); got != tc.s3 {
				t.Errorf("S3 endpoint = %q, want %q", got, tc.s3)
			}
			if s3.UsePathStyle != tc.wantPathStyle {
				t.Errorf("S3 path-style = %v, want %v", s3.UsePathStyle, tc.wantPathStyle)
			}
			if got := aws.ToString(NewSQS(cfg).Options().BaseEndpoint); got != tc.sqs {
				t.Errorf("SQS endpoint = %q, want %q", got, tc.sqs)
			}
			dynamo := NewDynamoDB(cfg).Options()
			if got := aws.ToString(dynamo.BaseEndpoint); got != tc.dynamo {
				t.Errorf("DynamoDB endpoint = %q, want %q", got, tc.dynamo)
			}
			if got, want := dynamo.DisableValidateResponseChecksum, tc.dynamo != ""; got != want {
				t.Errorf("DynamoDB skips response checksums: %v, want %v (only off AWS)", got, want)
			}
		})
	}
}

func TestLoadWithoutRegion(t *testing.T) {
	clearAWSEnv(t)
	t.Setenv("AWS_REGION", "")
	_, err := Load(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("Load without a region = %v, want an error naming AWS_REGION", err)
	}
}
