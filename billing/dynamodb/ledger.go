// Package dynamodb is the billing ledger on DynamoDB. It writes Storacha's
// w3infra egress-traffic-events and egress-traffic-monthly rows exactly as
// w3infra writes them, so Storacha's reports keep working, and keeps its own
// state (each event's ledger state and reason, each batch sent to the sink)
// in a table of its own, so that no table of Storacha's gains an attribute,
// an index or a schema change.
//
// Storacha's events table, one row per event (w3infra's attributes only):
//
//	pk          "<space>#<resource>"                 (HASH)
//	sk          "<servedAt>#<cause>"                 (RANGE)
//	space, customer, resource, cause   S
//	servedAt    ISO 8601 UTC with milliseconds, as JavaScript's toISOString
//	bytes       N
//
// Storacha's monthly table, one row per customer, month and space:
//
//	pk          "customer#<customer>"
//	sk          "<YYYY-MM>#<space>"
//	space, month S; bytes, eventCount N (ADDed)
//
// egressd's ledger table (<prefix>egressd-ledger, HASH pk, RANGE sk, GSI
// "state" on stateKey + stateSort, all attributes), four kinds of item:
//
//	entry       pk "entry#<cause>", sk "entry": the event's attributes,
//	            month, state, reason, recordedAt, updatedAt, its batch's
//	            ID and timestamp (batch, batchAt in Unix ms) and the
//	            batch version it last copied (batchVersion); stateKey
//	            "<state>#<shard>" (16 shards by cause) with stateSort =
//	            cause: every entry is in the state index, so listing any
//	            state (reported included) is a query. An entry with no
//	            batch attribute (written before batches, or adopted from
//	            w3infra) is a batch of one by itself, its resend its own;
//	            MigrateToBatches gives those egressd sent a batch item, so
//	            that Batches lists them too.
//	batch       pk "batch#<customer>", sk "<13-digit Unix ms>#<id>": the
//	            batch's timestamp, bytes, events, members (their causes,
//	            in order), resend, state, reason, account (the sink
//	            account it was last sent to, once a Settle names one)
//	            and a version that every Settle or Reject that applies
//	            bumps. The state of a batch is here; its members copy it. Batches of one customer in
//	            a time range are a query.
//	month       pk "month#<YYYY-MM>", sk "<customer>#<space>": that the
//	            month has a total for this customer and space, so usage
//	            of every customer is a query, not a scan of Storacha's
//	            monthly table (which has no index by month).
//	lock        pk "lock#<customer>", sk "lock": which worker may call
//	            the sink for the customer now (CustomerLock, lock.go).
//
// Record first reads, in one consistent BatchGetItem, the entries and the
// Storacha events rows of the events given. An event with an entry is
// returned as stored. An event whose events row exists but has no entry was
// recorded by w3infra itself (during a cut-over from Storacha's pipeline):
// it is adopted as reported with a conditional put, and nothing is counted
// twice. The rest are gathered into batches (billing.FormBatches, then split
// so that each fits one transaction of at most 100 actions) and each batch
// is one TransactWriteItems: every member's entry, put on condition that
// its cause is new (the dedup: another worker may race); the batch item;
// for each space (and month) of the batch, one ADD of the members' bytes
// and number to the monthly row, on condition that the total stays within
// int64; and the month item the first time this process counts a customer
// and space in a month. So a hot space's monthly row takes one write per
// batch, not per event (DynamoDB allows about 1,000 writes a second to one
// key). A member that another worker recorded meanwhile is taken out and
// the rest of the batch tried again; a transaction cancelled by a
// concurrent one is tried again after a short, jittered wait. When the
// overflow condition cancels a batch, the totals are read: the members
// they can take, in order, stay a batch, and each of the others is
// recorded alone, failed with ReasonTotalOverflow, counted in eventCount
// but not in bytes (totals only grow, so it could never fit later). The Storacha events rows follow with
// BatchWriteItem: their key and content are fixed by the event, so writing
// one again is harmless, and a redelivered event that is still pending
// writes its row again, mending a stop between the transaction and the row.
//
// Settle and Reject update the batch item first, on the monotone rules the
// billing.Ledger interface states, then bring every member whose copy is
// older than the batch's version into line, one UpdateItem each (moving it
// in the state index). A member update carries the batch version it copies
// and applies only over the same or an older one, so members end in the
// batch's last state whatever order concurrent settlements run in. Settling a batch
// again, even when the rules leave the batch unchanged, reads its members
// and updates those that lag behind (a stop between the batch update and
// its members), or disagree with it.
//
// Costs, for an operator sizing the tables, per event, Record then Settle
// as reported, tables and indexes together (cost_test.go measures them:
// go test ./billing/dynamodb -run WriteUnitsPerEvent -v). Items are under
// 1 KB except a large batch's item (about 60 bytes a member); transactional
// writes, and the index writes they cause, are billed double.
//
//	                write units
//	batch of 1      17     Record: the entry and its state index entry (4),
//	                       the batch item (2), the monthly row and its index
//	                       (4), the events row and its two indexes (3);
//	                       Settle: the batch item (1), the entry and its
//	                       move in the state index (3).
//	batch of 50     10.4   Record: each entry and its index entry (4), each
//	(one space)            events row and its indexes (3); once per batch
//	                       the monthly row and its index (4, 0.08 an event)
//	                       and the 4 KB batch item (8, 0.16 an event).
//	                       Settle: each entry (3), once the batch item (4).
//
// Reads: 2 strongly consistent read units per event (its entry and its
// events row, found or not), in one BatchGetItem per 50 events. Storacha's
// own pipeline writes 5 units per event, without a dedup; the monthly row
// of a hot space takes one write per batch, at most 97 events.
//
// Rows w3infra wrote have no entry: they are read as reported.
package dynamodb

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/internal/backoff"
	"github.com/egressd/egressd/internal/dynamotables"
)

// DefaultStateIndex is the ledger table's index of entries by state, as
// internal/dynamotables lays the table out.
const DefaultStateIndex = dynamotables.LedgerStateIndex

// shards spreads each state of the state index over this many partition
// keys, so that recording and settling events is not bounded by one
// partition's write rate.
const shards = 16

// monthsSeen bounds the customer-space-months this process remembers having
// registered in the ledger table.
const monthsSeen = 65536

// concurrency bounds the requests one call runs at once: index queries of
// Entries and Count, transactions of Record (one customer's batches go one
// after another, since they may share a monthly row), member updates of
// Settle.
const concurrency = 8

// timeLayout is JavaScript's Date.prototype.toISOString, which w3infra writes.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Tables names the tables a Ledger uses.
type Tables struct {
	// Events and Monthly are Storacha's egress-traffic tables.
	Events  string
	Monthly string
	// Ledger is egressd's own table.
	Ledger string
	// StateIndex is the ledger table's index by state (default DefaultStateIndex).
	StateIndex string
}

// Ledger is a billing.Ledger on DynamoDB.
type Ledger struct {
	client *dynamodb.Client
	tables Tables
	now    func() time.Time
	// registered remembers the month items this process has written.
	registered *lru.Cache[string, struct{}]
}

var _ billing.Ledger = (*Ledger)(nil)

// New returns a ledger on the given tables.
func New(client *dynamodb.Client, tables Tables) *Ledger {
	if tables.StateIndex == "" {
		tables.StateIndex = DefaultStateIndex
	}
	registered, _ := lru.New[string, struct{}](monthsSeen)
	return &Ledger{client: client, tables: tables, now: time.Now, registered: registered}
}

// parallel calls fn with 0 to n-1, at most concurrency at once, and returns
// the first error; the context of the calls still running ends with it.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, concurrency)
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// pause waits before the next of several attempts: DynamoDB's throttling
// and transaction conflicts are short-lived, and jitter spreads contenders.
func pause(ctx context.Context, attempt int) error {
	return pauseBackoff.Wait(ctx, attempt)
}

// pauseBackoff starts at 10ms; the cap keeps the loops that retry what
// DynamoDB left unprocessed, which have no bound of their own, from waiting
// longer than a throttled table needs.
var pauseBackoff = backoff.Policy{Base: 10 * time.Millisecond, Max: 200 * time.Millisecond}

// batchGet reads the keys of request (100 at most), taking again the keys
// DynamoDB left unprocessed, and calls found with each item read.
func (l *Ledger) batchGet(ctx context.Context, request map[string]types.KeysAndAttributes, found func(table string, item map[string]types.AttributeValue)) error {
	for attempt := 1; len(request) > 0; attempt++ {
		out, err := l.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
		if err != nil {
			return err
		}
		for table, items := range out.Responses {
			for _, item := range items {
				found(table, item)
			}
		}
		request = out.UnprocessedKeys
		if len(request) > 0 {
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		}
	}
	return nil
}

// get reads the ledger item at key with a consistent read;
// billing.ErrNotFound when there is none.
func (l *Ledger) get(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := l.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.tables.Ledger),
		Key:            key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, billing.ErrNotFound
	}
	return out.Item, nil
}

// formatTime writes t as toISOString does: UTC, milliseconds.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// numberAttr reads an integer attribute; a missing one is 0. DynamoDB
// numbers have up to 38 digits, so a total that some other writer let grow
// past int64 is an error that says so, never a wrapped or rounded number.
func numberAttr(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, nil
	}
	// w3infra writes JavaScript numbers, which may carry a fraction part of
	// zero or an exponent.
	r, ok := new(big.Rat).SetString(v.Value)
	if !ok || !r.IsInt() {
		return 0, fmt.Errorf("attribute %s = %q: not an integer", name, v.Value)
	}
	if n := r.Num(); n.IsInt64() {
		return n.Int64(), nil
	}
	return 0, fmt.Errorf("attribute %s = %s: past the 64-bit integers egressd counts in (largest %d)", name, v.Value, int64(math.MaxInt64))
}

// timeAttr reads an ISO 8601 attribute; a missing one is the zero time.
func timeAttr(item map[string]types.AttributeValue, name string) (time.Time, error) {
	s := stringAttr(item, name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute %s = %q: %w", name, s, err)
	}
	return t.UTC(), nil
}
