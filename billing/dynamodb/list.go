package dynamodb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/egressd/egressd/billing"
)

// queryConcurrency bounds the index queries one Entries or Count runs at once.
const queryConcurrency = 8

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
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, queryConcurrency)
	)
	for _, p := range partitions {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := query(ctx, p); err != nil {
				cancel(fmt.Errorf("querying index partition %s: %w", p, err))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
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
