package awsconfig

import (
	"strings"
	"testing"
)

func TestParseS3(t *testing.T) {
	on, off := true, false
	tests := []struct {
		raw     string
		want    Bucket
		wantErr string
	}{
		{raw: "s3://receipts", want: Bucket{Name: "receipts"}},
		{raw: "s3://receipts/", want: Bucket{Name: "receipts"}},
		{raw: "s3://my.bucket-1/egressd/prod/", want: Bucket{Name: "my.bucket-1", Prefix: "egressd/prod"}},
		{raw: "s3://receipts/p?path-style=true", want: Bucket{Name: "receipts", Prefix: "p", PathStyle: &on}},
		{raw: "s3://receipts?path-style=false", want: Bucket{Name: "receipts", PathStyle: &off}},
		{raw: "receipts", wantErr: "want s3://BUCKET[/PREFIX]"},
		{raw: "https://receipts", wantErr: "want s3://BUCKET[/PREFIX]"},
		{raw: "s3://", wantErr: "no bucket"},
		{raw: "s3:///prefix", wantErr: "no bucket"},
		{raw: "s3://Receipts", wantErr: "lowercase"},
		{raw: "s3://ab", wantErr: "3 to 63"},
		{raw: "s3://-receipts", wantErr: "begin and end"},
		{raw: "s3://receipts/a//b", wantErr: "empty path segment"},
		{raw: "s3://receipts?path-style=maybe", wantErr: "true or false"},
		{raw: "s3://receipts?region=eu-west-1", wantErr: `unknown parameter "region"`},
	}
	for _, tc := range tests {
		got, err := ParseS3(tc.raw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseS3(%q) = %+v, %v; want an error containing %q", tc.raw, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseS3(%q): %v", tc.raw, err)
			continue
		}
		if got.Name != tc.want.Name || got.Prefix != tc.want.Prefix || !sameBool(got.PathStyle, tc.want.PathStyle) {
			t.Errorf("ParseS3(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
		if back, err := ParseS3(got.String()); err != nil || back.String() != got.String() {
			t.Errorf("ParseS3(%q).String() = %q does not read back: %v", tc.raw, got.String(), err)
		}
	}
}

func TestParseSQS(t *testing.T) {
	tests := []struct {
		raw     string
		want    Queue
		wantErr string
	}{
		{raw: "sqs://egress-events", want: Queue{Name: "egress-events", DeadLetter: "egress-events-dlq"}},
		{raw: "sqs://egress_events?dlq=parked", want: Queue{Name: "egress_events", DeadLetter: "parked"}},
		{raw: "sqs://", wantErr: "no queue name"},
		{raw: "sqs:/events", wantErr: "want sqs://QUEUE_NAME"},
		{raw: "sqs://events.fifo", wantErr: "FIFO"},
		{raw: "sqs://events/more", wantErr: "only letters, digits"},
		{raw: "sqs://" + strings.Repeat("q", 81), wantErr: "longer than 80"},
		{raw: "sqs://" + strings.Repeat("q", 78), wantErr: "dead-letter queue"},
		{raw: "sqs://events?dlq=events", wantErr: "must differ"},
		{raw: "sqs://events?visibility=30", wantErr: `unknown parameter "visibility"`},
	}
	for _, tc := range tests {
		got, err := ParseSQS(tc.raw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSQS(%q) = %+v, %v; want an error containing %q", tc.raw, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSQS(%q): %v", tc.raw, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSQS(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
		if back, err := ParseSQS(got.String()); err != nil || back != got {
			t.Errorf("ParseSQS(%q).String() = %q does not read back: %+v, %v", tc.raw, got.String(), back, err)
		}
	}
}

func TestParseDynamoDB(t *testing.T) {
	tests := []struct {
		raw     string
		want    Tables
		wantErr string
	}{
		{raw: "dynamodb://", want: Tables{
			Consumer: "consumer", Subscription: "subscription", Customer: "customer", Revocation: "revocation",
			Events: "egress-traffic-events", Monthly: "egress-traffic-monthly", Ledger: "egressd-ledger",
		}},
		{raw: "dynamodb://prod-w3infra-", want: Tables{
			Consumer: "prod-w3infra-consumer", Subscription: "prod-w3infra-subscription", Customer: "prod-w3infra-customer",
			Revocation: "prod-w3infra-revocation", Events: "prod-w3infra-egress-traffic-events",
			Monthly: "prod-w3infra-egress-traffic-monthly", Ledger: "prod-w3infra-egressd-ledger",
		}},
		{raw: "dynamodb://Egressd_?customer=billing.customers&monthly=totals",
			want: Tables{
				Consumer: "Egressd_consumer", Subscription: "Egressd_subscription", Customer: "billing.customers",
				Revocation: "Egressd_revocation", Events: "Egressd_egress-traffic-events", Monthly: "totals", Ledger: "Egressd_egressd-ledger",
			}},
		{raw: "dynamodb://prod-w3infra-?ledger=egressd-prod-ledger&subscription=subs&revocation=revoked",
			want: Tables{
				Consumer: "prod-w3infra-consumer", Subscription: "subs", Customer: "prod-w3infra-customer",
				Revocation: "revoked", Events: "prod-w3infra-egress-traffic-events",
				Monthly: "prod-w3infra-egress-traffic-monthly", Ledger: "egressd-prod-ledger",
			}},
		{raw: "dynamodb:", wantErr: "want dynamodb://[TABLE_PREFIX]"},
		{raw: "dynamodb://a/b", wantErr: "cannot contain '/'"},
		{raw: "dynamodb://pre fix", wantErr: "only letters"},
		{raw: "dynamodb://?consumer=ab", wantErr: "3 to 255"},
		{raw: "dynamodb://?ledger=x", wantErr: "3 to 255"},
		{raw: "dynamodb://?unsettled=x", wantErr: `unknown parameter "unsettled" (known: consumer, subscription, customer, revocation, events, monthly, ledger)`},
		{raw: "dynamodb://p-?ledger=p-egress-traffic-events", wantErr: `the events and ledger tables are both named "p-egress-traffic-events"`},
	}
	for _, tc := range tests {
		got, err := ParseDynamoDB(tc.raw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseDynamoDB(%q) = %+v, %v; want an error containing %q", tc.raw, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDynamoDB(%q): %v", tc.raw, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseDynamoDB(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

func sameBool(a, b *bool) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
