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

// unsettledStates are the states the unsettled index holds.
var unsettledStates = []billing.State{billing.Pending, billing.Unbillable, billing.Failed}

// Entries lists entries matching f, ordered by cause: from the unsettled
// index when f asks only for states it holds, else by scanning the table.
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
		entries []billing.Entry
		err     error
	)
	if slices.Contains(states, billing.Reported) {
		entries, err = l.scanEntries(ctx, states, f)
	} else {
		entries, err = l.unsettledEntries(ctx, states, f, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("listing ledger entries: %w", err)
	}
	slices.SortFunc(entries, func(a, b billing.Entry) int { return strings.Compare(a.Cause, b.Cause) })
	if len(entries) > limit {
		entries = entries[:limit]
	}
	return entries, nil
}

// unsettledEntries queries every shard of every state in the unsettled index
// for up to limit matching entries after f.After; the caller merges them.
func (l *Ledger) unsettledEntries(ctx context.Context, states []billing.State, f billing.EntryFilter, limit int) ([]billing.Entry, error) {
	var (
		mu  sync.Mutex
		all []billing.Entry
	)
	err := l.eachPartition(ctx, states, func(ctx context.Context, partition string) error {
		in := l.unsettledQuery(partition, f.Customer)
		if f.After != "" {
			in.KeyConditionExpression = aws.String(*in.KeyConditionExpression + " AND cause > :after")
			in.ExpressionAttributeValues[":after"] = str(f.After)
		}
		// Each partition is ordered by cause, so its first limit matches are
		// all it can contribute to the first limit overall.
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
		all = append(all, found...)
		mu.Unlock()
		return nil
	})
	return all, err
}

// unsettledQuery queries one partition of the unsettled index, for one
// customer's entries when customer is set.
func (l *Ledger) unsettledQuery(partition, customer string) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(l.tables.Events),
		IndexName:                 aws.String(l.tables.UnsettledIndex),
		KeyConditionExpression:    aws.String("unsettled = :partition"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":partition": str(partition)},
	}
	if customer != "" {
		in.FilterExpression = aws.String("customer = :customer")
		in.ExpressionAttributeValues[":customer"] = str(customer)
	}
	return in
}

// eachPartition runs query on every shard of the unsettled index for each
// of states (those it holds), a few at a time, and returns the first error.
func (l *Ledger) eachPartition(ctx context.Context, states []billing.State, query func(ctx context.Context, partition string) error) error {
	var partitions []string
	for _, s := range states {
		if !slices.Contains(unsettledStates, s) {
			continue
		}
		for shard := range shards {
			partitions = append(partitions, unsettledPartition(s, shard))
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

// scanEntries reads the whole events table for entries in states (rows
// without a state count as reported) matching f. Only listings that include
// reported entries come here.
func (l *Ledger) scanEntries(ctx context.Context, states []billing.State, f billing.EntryFilter) ([]billing.Entry, error) {
	var (
		conds  []string
		values = map[string]types.AttributeValue{}
	)
	var in []string
	for i, s := range states {
		name := fmt.Sprintf(":s%d", i)
		in = append(in, name)
		values[name] = str(string(s))
	}
	conds = append(conds, "(#state IN ("+strings.Join(in, ", ")+") OR attribute_not_exists(#state))")
	if f.Customer != "" {
		conds = append(conds, "customer = :customer")
		values[":customer"] = str(f.Customer)
	}
	if f.After != "" {
		conds = append(conds, "cause > :after")
		values[":after"] = str(f.After)
	}
	p := dynamodb.NewScanPaginator(l.client, &dynamodb.ScanInput{
		TableName:                 aws.String(l.tables.Events),
		FilterExpression:          aws.String(strings.Join(conds, " AND ")),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: values,
		ConsistentRead:            aws.Bool(true),
	})
	var entries []billing.Entry
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, item := range page.Items {
			e, err := decodeEntry(item)
			if err != nil {
				return nil, err
			}
			if slices.Contains(states, e.State) {
				entries = append(entries, e)
			}
		}
	}
	return entries, nil
}

// Usage returns the monthly totals of f's month, by customer then space.
func (l *Ledger) Usage(ctx context.Context, f billing.UsageFilter) ([]billing.Usage, error) {
	var items []map[string]types.AttributeValue
	if f.Customer != "" {
		p := dynamodb.NewQueryPaginator(l.client, &dynamodb.QueryInput{
			TableName:              aws.String(l.tables.Monthly),
			KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :month)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":    str("customer#" + f.Customer),
				":month": str(f.Month + "#"),
			},
			ConsistentRead: aws.Bool(true),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading monthly usage: %w", err)
			}
			items = append(items, page.Items...)
		}
	} else {
		// No index has the month alone as its key: read the table.
		p := dynamodb.NewScanPaginator(l.client, &dynamodb.ScanInput{
			TableName:                 aws.String(l.tables.Monthly),
			FilterExpression:          aws.String("begins_with(sk, :month)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":month": str(f.Month + "#")},
			ConsistentRead:            aws.Bool(true),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading monthly usage: %w", err)
			}
			items = append(items, page.Items...)
		}
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
// unbillable and failed counted on the unsettled index, reported as the
// rest of the month's eventCount.
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
	err = l.eachPartition(ctx, unsettledStates, func(ctx context.Context, partition string) error {
		in := l.unsettledQuery(partition, f.Customer)
		in.Select = types.SelectCount
		month := "begins_with(servedAt, :month)"
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
	counts[billing.Reported] = total - counts[billing.Pending] - counts[billing.Unbillable] - counts[billing.Failed]
	if counts[billing.Reported] < 0 {
		// The index ran ahead of a monthly total it cannot run ahead of in a
		// transaction; only its lag can make this happen. Never print < 0.
		counts[billing.Reported] = 0
	}
	return counts, nil
}
