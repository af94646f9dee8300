package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/receipt/ran"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/core/result/ok"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awsinit"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/receipts/receiptstest"
	"github.com/egressd/egressd/receipts/s3"
)

func TestConformance(t *testing.T) {
	for _, prefix := range []string{"", "tenant/a"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			receiptstest.Run(t, func(t *testing.T) receipts.Store {
				client, bucket := newBucket(t)
				return s3.New(client, bucket, prefix, s3.Options{Concurrency: 4})
			})
		})
	}
}

// TestKeyLayout checks the documented layout, which operators and other
// tools rely on: the archive under receipts/<invocation CID> and a pointer
// under by-receipt/<receipt CID>.
func TestKeyLayout(t *testing.T) {
	ctx := context.Background()
	client, bucket := newBucket(t)
	store := s3.New(client, bucket, "/deploy/", s3.Options{})
	r := newReceipt(t)
	if err := store.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantArchive, err := io.ReadAll(r.Archive())
	if err != nil {
		t.Fatal(err)
	}
	inv := r.Ran().Link().String()
	if got := object(t, client, bucket, "deploy/receipts/"+inv); !bytes.Equal(got, wantArchive) {
		t.Errorf("deploy/receipts/%s holds %d bytes, want the receipt's %d-byte archive", inv, len(got), len(wantArchive))
	}
	if got := object(t, client, bucket, "deploy/by-receipt/"+r.Root().Link().String()); string(got) != inv {
		t.Errorf("deploy/by-receipt/<receipt CID> = %q, want the invocation CID %q", got, inv)
	}
}

// TestReadsArchiveWrittenByOthers checks that a receipt archive put in place
// by another writer (a migration, another egressd version) is served.
func TestReadsArchiveWrittenByOthers(t *testing.T) {
	ctx := context.Background()
	client, bucket := newBucket(t)
	r := newReceipt(t)
	archive, err := io.ReadAll(r.Archive())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("receipts/" + r.Ran().Link().String()), Body: bytes.NewReader(archive),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s3.New(client, bucket, "", s3.Options{}).Get(ctx, r.Ran().Link().String())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Root().Link().String() != r.Root().Link().String() {
		t.Fatalf("Get = receipt %s, want %s", got.Root().Link(), r.Root().Link())
	}
}

func newBucket(t *testing.T) (*awss3.Client, string) {
	t.Helper()
	cfg := awstest.Config(t)
	client := awsconfig.NewS3(cfg, nil)
	bucket := awstest.Name("receipts")
	if err := awsinit.Bucket(context.Background(), client, bucket, awsinit.Options{}); err != nil {
		t.Fatal(err)
	}
	return client, bucket
}

func object(t *testing.T, client *awss3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := client.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newReceipt(t *testing.T) receipt.AnyReceipt {
	t.Helper()
	s, err := signer.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	inv, err := invocation.Invoke(s, s, ucan.NewCapability("test/echo", s.DID().String(), ucan.NoCaveats{}),
		delegation.WithNonce(hex.EncodeToString(nonce)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Issue(s, result.Ok[ok.Unit, ipld.Builder](ok.Unit{}), ran.FromInvocation(inv))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
