package dynamodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// unreportedStates are the states Count reads from the state index; the
// reported entries are the rest of the month's eventCount.
var unreportedStates = []billing.State{billing.Pending, billing.Unbillable, billing.Failed, billing.Rejected}

// Entries lists entries matching f, ordered by cause, from the state index:
// each of its partitions is ordered by cause, so each contributes at most
// its first Limit matches after f.After.
func (l *Ledger) Entries(ctx context.Context, f billing.EntryFilter) ([]billing.Entry, error) {
	states := f.States
	if len(states) == 0 {
		states = billing.States
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.Batch != "" {
		return l.batchEntries(ctx, f, states, limit)
	}
	var (
		mu      sync.Mutex
		entries []billing.Entry
	)
	err := l.eachPartition(ctx, states, func(ctx context.Context, partition string) error {
		in := l.stateQuery(partition, f.Customer)
		if f.After != "" {
			in.KeyConditionExpression = aws.String(*in.KeyConditionExpression + " AND stateSort > :after")
			in.ExpressionAttributeValues[":after"] = str(f.After)
		}
		var found []billing.Entry
		p := dynamodb.NewQueryPaginator(l.client, in)
		for p.HasMorePages() && len(found) < limit {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, item := range page.Items {
				e, err := decodeEntry(item)
				if err != nil {
					return err
				}
				found = append(found, e)
			}
		}
		mu.Lock()
		entries = append(entries, found...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing ledger entries: %w", err)
	}
	slices.SortFunc(entries, func(a, b billing.Entry) int { return strings.Compare(a.Cause, b.Cause) })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	return entries, nil
}

// batchEntries lists the members of batch f.Batch that match f, ordered
// by cause: read through the batch item's list of members, not the index.
func (l *Ledger) batchEntries(ctx context.Context, f billing.EntryFilter, states []billing.State, limit int) ([]billing.Entry, error) {
	entry, key, err := l.locate(ctx, f.Batch)
	if errors.Is(err, billing.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the entries of batch %s: %w", f.Batch, err)
	}
	items := []map[string]types.AttributeValue{entry}
	if key != nil {
		batch, err := l.get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("listing the entries of batch %s: its item: %w", f.Batch, err)
		}
		items = nil
		for chunk := range slices.Chunk(members(batch), 100) {
			keys := make([]map[string]types.AttributeValue, len(chunk))
			for i, cause := range chunk {
				keys[i] = entryKey(cause)
			}
			err := l.batchGet(ctx, map[string]types.KeysAndAttributes{
				l.tables.Ledger: {Keys: keys, ConsistentRead: aws.Bool(true)},
			}, func(_ string, item map[string]types.AttributeValue) { items = append(items, item) })
			if err != nil {
				return nil, fmt.Errorf("listing the entries of batch %s: %w", f.Batch, err)
			}
		}
	}
	var entries []billing.Entry
	for _, item := range items {
		e, err := decodeEntry(item)
		if err != nil {
			return nil, fmt.Errorf("listing the entries of batch %s: %w", f.Batch, err)
		}
		if slices.Contains(states, e.State) && (f.Customer == "" || e.Customer == f.Customer) && e.Cause > f.After {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b billing.Entry) int { return strings.Compare(a.Cause, b.Cause) })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	return entries, nil
}

// Batches calls fn with each batch of f.Customer whose timestamp is in
// [f.From, f.To), in order of timestamp: one query of the customer's batch
// items. A zero To is no upper bound. Entries that are batches of one by
// themselves (written before batches, or adopted from w3infra) have no
// batch item and are not listed.
func (l *Ledger) Batches(ctx context.Context, f billing.BatchFilter, fn func(billing.Batch) error) error {
	if f.Customer == "" {
		return errors.New("listing batches: a customer is required")
	}
	to := f.To
	if to.IsZero() {
		to = time.UnixMilli(1e13 - 1)
	}
	// Key bounds in whole milliseconds, wide enough; the exact bounds are
	// checked on each batch's timestamp.
	from := max(f.From.UnixMilli(), 0)
	until := to.UnixMilli()
	if to.After(time.UnixMilli(until)) {
		until++
	}
	if until <= from {
		return nil
	}
	p := dynamodb.NewQueryPaginator(l.client, &dynamodb.QueryInput{
		TableName:              aws.String(l.tables.Ledger),
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :from AND :until"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":    str("batch#" + f.Customer),
			":from":  str(fmt.Sprintf("%013d", from)),
			":until": str(fmt.Sprintf("%013d", until)),
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the batches of %s: %w", f.Customer, err)
		}
		for _, item := range page.Items {
			b, err := decodeBatch(item)
			if err != nil {
				return fmt.Errorf("listing the batches of %s: %w", f.Customer, err)
			}
			if b.Timestamp.Before(f.From) || !b.Timestamp.Before(to) {
				continue
			}
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// stateQuery queries one partition of the state index, for one customer's
// entries when customer is set.
func (l *Ledger) stateQuery(partition, customer string) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.tables.Ledger),
		IndexName:                 aws.String(l.tables.StateIndex),
		KeyConditionExpression:    aws.String("stateKey = :partition"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":partition": str(partition)},
	}
	if customer != "" {
		in.FilterExpression = aws.String("customer = :customer")
		in.ExpressionAttributeValues[":customer"] = str(customer)
	}
	return in
}

// eachPartition runs query on every shard of the state index for each of
// states, a few at a time, and returns the first error.
func (l *Ledger) eachPartition(ctx context.Context, states []billing.State, query func(ctx context.Context, partition string) error) error {
	var partitions []string
	for _, s := range states {
		for shard := range shards {
			partitions = append(partitions, statePartition(s, shard))
		}
	}
	return parallel(ctx, len(partitions), func(ctx context.Context, i int) error {
		if err := query(ctx, partitions[i]); err != nil {
			return fmt.Errorf("querying index partition %s: %w", partitions[i], err)
		}
		return nil
	})
}

// Usage returns the monthly totals of f's month, by customer then space:
// one customer's rows by key; every customer's through the ledger table's
// month items (which customers and spaces have a total that month), then
// their rows in Storacha's monthly table by key.
func (l *Ledger) Usage(ctx context.Context, f billing.UsageFilter) ([]billing.Usage, error) {
	var (
		items []map[string]types.AttributeValue
		err   error
	)
	if f.Customer != "" {
		items, err = l.query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(l.tables.Monthly),
			KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :month)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":    str("customer#" + f.Customer),
				":month": str(f.Month + "#"),
			},
			ConsistentRead: aws.Bool(true),
		})
	} else {
		items, err = l.everyCustomersMonth(ctx, f.Month)
	}
	if err != nil {
		return nil, fmt.Errorf("reading monthly usage: %w", err)
	}
	out := make([]billing.Usage, 0, len(items))
	for _, item := range items {
		u, err := decodeUsage(item)
		if err != nil {
			return nil, fmt.Errorf("reading monthly usage: %w", err)
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b billing.Usage) int {
		return cmp.Or(strings.Compare(a.Customer, b.Customer), strings.Compare(a.Space, b.Space))
	})
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// everyCustomersMonth reads the monthly rows of every customer and space
// registered in month.
func (l *Ledger) everyCustomersMonth(ctx context.Context, month string) ([]map[string]types.AttributeValue, error) {
	registered, err := l.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(l.tables.Ledger),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str("month#" + month)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	var keys []map[string]types.AttributeValue
	for _, r := range registered {
		keys = append(keys, map[string]types.AttributeValue{
			"pk": str("customer#" + stringAttr(r, "customer")),
			"sk": str(month + "#" + stringAttr(r, "space")),
		})
	}
	var rows []map[string]types.AttributeValue
	for chunk := range slices.Chunk(keys, 100) {
		pending := map[string]types.KeysAndAttributes{l.tables.Monthly: {Keys: chunk, ConsistentRead: aws.Bool(true)}}
		for len(pending) > 0 {
			out, err := l.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
			if err != nil {
				return nil, err
			}
			rows = append(rows, out.Responses[l.tables.Monthly]...)
			pending = out.UnprocessedKeys
		}
	}
	return rows, nil
}

// query reads every page of in.
func (l *Ledger) query(ctx context.Context, in *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	p := dynamodb.NewQueryPaginator(l.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
	}
	return items, nil
}

// decodeUsage reads a monthly row; the customer is only in its key.
func decodeUsage(item map[string]types.AttributeValue) (billing.Usage, error) {
	month, space, _ := strings.Cut(stringAttr(item, "sk"), "#")
	u := billing.Usage{
		Customer: strings.TrimPrefix(stringAttr(item, "pk"), "customer#"),
		Space:    cmp.Or(stringAttr(item, "space"), space),
		Month:    cmp.Or(stringAttr(item, "month"), month),
	}
	var err error
	if u.Bytes, err = numberAttr(item, "bytes"); err != nil {
		return billing.Usage{}, fmt.Errorf("the %s total of %s in space %s: %w", u.Month, u.Customer, u.Space, err)
	}
	if u.Events, err = numberAttr(item, "eventCount"); err != nil {
		return billing.Usage{}, fmt.Errorf("the %s total of %s in space %s: %w", u.Month, u.Customer, u.Space, err)
	}
	return u, nil
}

// Count returns the number of entries in each state for f's month: pending,
// unbillable, failed and rejected counted on the state index, reported as the rest of
// the month's eventCount (which also counts the events w3infra recorded).
func (l *Ledger) Count(ctx context.Context, f billing.UsageFilter) (map[billing.State]int64, error) {
	usage, err := l.Usage(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("counting ledger states: %w", err)
	}
	var total int64
	for _, u := range usage {
		// Event counts cannot come near 2^63; bytes are never summed here.
		total += u.Events
	}
	counts := make(map[billing.State]int64, len(billing.States))
	for _, s := range billing.States {
		counts[s] = 0
	}
	var mu sync.Mutex
	err = l.eachPartition(ctx, unreportedStates, func(ctx context.Context, partition string) error {
		in := l.stateQuery(partition, f.Customer)
		in.Select = types.SelectCount
		month := "#month = :month"
		in.ExpressionAttributeNames = map[string]string{"#month": "month"}
		in.ExpressionAttributeValues[":month"] = str(f.Month)
		if in.FilterExpression == nil {
			in.FilterExpression = aws.String(month)
		} else {
			in.FilterExpression = aws.String(*in.FilterExpression + " AND " + month)
		}
		state, _, _ := strings.Cut(partition, "#")
		var n int64
		p := dynamodb.NewQueryPaginator(l.client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			n += int64(page.Count)
		}
		mu.Lock()
		counts[billing.State(state)] += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counting ledger states: %w", err)
	}
	counts[billing.Reported] = total
	for _, s := range unreportedStates {
		counts[billing.Reported] -= counts[s]
	}
	if counts[billing.Reported] < 0 {
		// The index ran ahead of a monthly total it cannot run ahead of in a
		// transaction; only its lag can make this happen. Never print < 0.
		counts[billing.Reported] = 0
	}
	return counts, nil
}
