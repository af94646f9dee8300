// Package s3 keeps receipts in an S3 bucket, write-once, for replicas that
// share no disk.
//
// Key layout, under an optional PREFIX:
//
//	PREFIX/receipts/<invocation CID>    the receipt as a CAR archive (its
//	                                    invocation and proofs included), the
//	                                    same bytes the embedded store keeps;
//	                                    written with If-None-Match: * so the
//	                                    first receipt for an invocation wins
//	PREFIX/by-receipt/<receipt CID>     a pointer: the invocation CID, as text
//
// Put writes the pointer and the archive (both conditional; an object that
// already exists counts as stored). Get by invocation CID reads the archive;
// Get by receipt CID follows the pointer and then checks that the archive it
// finds is that receipt, so a pointer left by a receipt that lost the
// write-once race (or by a crash half way through Put) never serves the wrong
// receipt. CIDs are written in their canonical string form (base32 for CIDv1).
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	gocid "github.com/ipfs/go-cid"
	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/receipts"
)

// Object key folders under the prefix.
const (
	receiptsFolder  = "receipts/"
	byReceiptFolder = "by-receipt/"
)

// carContentType is the media type of the archives.
const carContentType = "application/vnd.ipld.car"

// Options tunes a Store; zero values take the defaults.
type Options struct {
	// Concurrency bounds the S3 requests one Put makes at once (default 16).
	Concurrency int
}

// Store is the S3 receipts.Store.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	opts   Options
}

var _ receipts.Store = (*Store)(nil)

// New returns a Store keeping receipts in bucket under prefix (which may be
// empty). The bucket must exist: see internal/awsinit.
func New(client *s3.Client, bucket, prefix string, opts Options) *Store {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: bucket, prefix: prefix, opts: opts}
}

// Put stores the receipts. A receipt whose invocation already has one is
// not stored (the first receipt is kept) and is not an error.
func (s *Store) Put(ctx context.Context, rcpts ...receipt.AnyReceipt) error {
	type object struct {
		key, contentType string
		body             []byte
	}
	objects := make([]object, 0, 2*len(rcpts))
	// Within one Put, too, the first receipt for an invocation wins: later
	// writes of a key already in the list are dropped.
	listed := make(map[string]bool, 2*len(rcpts))
	add := func(o object) {
		if !listed[o.key] {
			listed[o.key] = true
			objects = append(objects, o)
		}
	}
	for _, r := range rcpts {
		inv, err := receipts.Invocation(r)
		if err != nil {
			return err
		}
		add(object{s.prefix + byReceiptFolder + r.Root().Link().String(), "text/plain", []byte(inv)})
		if listed[s.prefix+receiptsFolder+inv] {
			continue
		}
		archive, err := receipts.Archive(r)
		if err != nil {
			return fmt.Errorf("archiving receipt: %w", err)
		}
		add(object{s.prefix + receiptsFolder + inv, carContentType, archive})
	}

	// Writes run concurrently, a bounded number at a time; the first
	// failure stops the rest, since the Put fails anyway.
	writeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, s.opts.Concurrency)
		errOnce  sync.Once
		firstErr error
	)
	for _, o := range objects {
		sem <- struct{}{}
		if writeCtx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.putOnce(writeCtx, o.key, o.contentType, o.body); err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storing receipts: %w", err)
	}
	return nil
}

// putOnce writes key unless it exists. S3 answers 412 when it does, and 409
// while another conditional write of the same key is in flight; the latter is
// retried until that write settles.
func (s *Store) putOnce(ctx context.Context, key, contentType string, body []byte) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			ContentType:   aws.String(contentType),
			IfNoneMatch:   aws.String("*"),
		})
		switch status := httpStatus(err); {
		case err == nil, status == http.StatusPreconditionFailed:
			return nil
		case status == http.StatusConflict && attempt < 5:
			select {
			case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return fmt.Errorf("writing s3://%s/%s: %w", s.bucket, key, err)
		}
	}
}

// Get finds a receipt by invocation CID, then by receipt CID.
func (s *Store) Get(ctx context.Context, cid string) (receipt.AnyReceipt, error) {
	c, err := gocid.Decode(cid)
	if err != nil {
		// Not a CID, so nothing can be stored under it (and it never reaches a key).
		return nil, receipts.ErrNotFound
	}
	cid = c.String()

	rcpt, err := s.byInvocation(ctx, cid)
	if !errors.Is(err, receipts.ErrNotFound) {
		return rcpt, err
	}
	inv, err := s.get(ctx, s.prefix+byReceiptFolder+cid)
	if err != nil {
		return nil, err
	}
	invCID, err := gocid.Decode(string(inv))
	if err != nil {
		return nil, fmt.Errorf("reading receipt index %s: bad invocation CID: %w", cid, err)
	}
	rcpt, err = s.byInvocation(ctx, invCID.String())
	if err != nil {
		return nil, err
	}
	if rcpt.Root().Link().String() != cid {
		// Another receipt for the same invocation was stored first.
		return nil, receipts.ErrNotFound
	}
	return rcpt, nil
}

func (s *Store) byInvocation(ctx context.Context, inv string) (receipt.AnyReceipt, error) {
	archive, err := s.get(ctx, s.prefix+receiptsFolder+inv)
	if err != nil {
		return nil, err
	}
	rcpt, err := receipt.Extract(archive)
	if err != nil {
		return nil, fmt.Errorf("decoding stored receipt %s: %w", inv, err)
	}
	return rcpt, nil
}

// get reads a whole object; receipts.ErrNotFound when there is none.
func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	var noKey *types.NoSuchKey
	if errors.As(err, &noKey) || httpStatus(err) == http.StatusNotFound {
		return nil, receipts.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", s.bucket, key, err)
	}
	return body, nil
}

// httpStatus is the HTTP status of a failed S3 call, 0 when there was none.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed" {
		return http.StatusPreconditionFailed
	}
	return 0
}
