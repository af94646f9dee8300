package console_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/receipt/ran"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/console"
)

// The fake's figures, which the tests expect to see on the pages.
var (
	now     = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	alice   = "did:mailto:example.com:alice"
	bob     = "did:mailto:example.com:bob"
	hostile = "did:mailto:x.com:<script>"
)

// fakeSource holds known data and applies re-drives to it, as the real
// stores would: the group disappears and its entries become pending.
type fakeSource struct {
	mu        sync.Mutex
	overview  console.Overview
	customers []console.CustomerRow
	details   map[string]console.CustomerDetail
	problems  []console.ProblemGroup
	receipts  map[string]receipt.AnyReceipt
	redrives  []console.ProblemKey
	fail      error // returned by every read when set
}

// testReceipts are a valid, a foreign-signed and a failure receipt, keyed
// by the invocation they ran.
type testReceipts struct {
	service               principal.Signer
	valid, forged, failed receipt.AnyReceipt
}

func newReceipts(t testing.TB) testReceipts {
	t.Helper()
	service, _ := signer.Generate()
	other, _ := signer.Generate()
	issue := func(by principal.Signer, fail bool, n int) receipt.AnyReceipt {
		space, _ := signer.Generate()
		gateway, _ := signer.Generate()
		dlg, err := client.Delegate(space, gateway, []string{"space/content/serve/*"}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		mh, _ := multihash.Sum(fmt.Appendf(nil, "blob %d", n), multihash.SHA2_256, -1)
		resource := cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}
		inv, err := client.Invoke(gateway, service, client.Record{Space: space.DID(), Resource: resource, Bytes: 1000 + int64(n), ServedAt: now}, dlg)
		if err != nil {
			t.Fatal(err)
		}
		var r receipt.AnyReceipt
		if fail {
			r, err = receipt.Issue(by, result.Error[capabilities.RecordOK](capabilities.ConsumerNotFound(space.DID().String())), ran.FromInvocation(inv))
		} else {
			ok := capabilities.NewRecordOK(space.DID().String(), capabilities.RecordCaveats{Resource: resource, Bytes: 1000 + int64(n), ServedAt: now.UnixMilli()}, inv.Link())
			r, err = receipt.Issue(by, result.Ok[capabilities.RecordOK, capabilities.Failure](ok), ran.FromInvocation(inv))
		}
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return testReceipts{service: service, valid: issue(service, false, 1), forged: issue(other, false, 2), failed: issue(service, true, 3)}
}

func days(n int, bytesOf func(i int) uint64) []console.DayTotal {
	out := make([]console.DayTotal, n)
	for i := range out {
		d := now.AddDate(0, 0, i-n+1)
		out[i] = console.DayTotal{Date: d.Format("2006-01-02"), Bytes: bytesOf(i), Events: int64(i)}
	}
	return out
}

func newFakeSource(rs testReceipts) *fakeSource {
	rows := []console.CustomerRow{
		{Customer: alice, Account: "cus_alice", Bytes: 1_234_567_890, Events: 1200, States: map[billing.State]int64{billing.Reported: 1100, billing.Pending: 50, billing.Failed: 50}},
		{Customer: bob, Account: "cus_bob", Bytes: 987_654, Events: 30, States: map[billing.State]int64{billing.Reported: 20, billing.Unbillable: 10}},
		{Customer: hostile, Bytes: 5_000_000_000, Events: 7, States: map[billing.State]int64{billing.Unbillable: 7}},
	}
	f := &fakeSource{
		overview: console.Overview{
			EgressToday: 2_500_000_000, EgressMonth: 6_235_555_544, EventsToday: 400, EventsMonth: 1237,
			InvocationsPerSecond: 12.34, QueueDepth: 17, DeadLetters: 2, BillingLag: 3*time.Hour + 12*time.Minute,
			States:        map[billing.State]int64{billing.Pending: 50, billing.Reported: 1120, billing.Unbillable: 17, billing.Failed: 50},
			LastReconcile: &console.Reconcile{At: now.Add(-time.Hour), OK: false, Summary: "2 batches missing at Stripe"},
			Daily:         days(30, func(i int) uint64 { return uint64(i) * 100_000_000 }),
		},
		customers: rows,
		details:   map[string]console.CustomerDetail{},
		problems: []console.ProblemGroup{
			{ProblemKey: console.ProblemKey{Customer: alice, State: billing.Failed, Reason: "stripe unreachable"}, Events: 50, Bytes: 12_000_000, Oldest: now.Add(-3 * time.Hour)},
			{ProblemKey: console.ProblemKey{Customer: bob, State: billing.Unbillable, Reason: billing.ReasonNoAccount}, Events: 10, Bytes: 4000, Oldest: now.Add(-48 * time.Hour)},
			{ProblemKey: console.ProblemKey{Customer: hostile, State: billing.Unbillable, Reason: billing.ReasonNoAccount}, Events: 7, Bytes: 5_000_000_000, Oldest: now.Add(-time.Hour)},
		},
		receipts: map[string]receipt.AnyReceipt{},
	}
	for _, r := range []receipt.AnyReceipt{rs.valid, rs.forged, rs.failed} {
		f.receipts[r.Ran().Link().String()] = r
	}
	entry := func(r receipt.AnyReceipt, st billing.State, reason string) billing.Entry {
		return billing.Entry{
			Event: billing.Event{Space: "did:key:z6MkSpace", Customer: alice, Resource: "bafkreiresource", Bytes: 1001, ServedAt: now.Add(-time.Minute), Cause: r.Ran().Link().String()},
			Batch: "batch-1", State: st, Reason: reason, RecordedAt: now.Add(-time.Minute), UpdatedAt: now,
		}
	}
	f.details[alice] = console.CustomerDetail{
		CustomerRow: rows[0],
		Spaces:      []console.SpaceTotal{{Space: "did:key:z6MkSpaceOne", Bytes: 1_000_000_000, Events: 1000}, {Space: "did:key:z6MkSpaceTwo", Bytes: 234_567_890, Events: 200}},
		Daily:       days(30, func(i int) uint64 { return uint64(i%7) * 10_000_000 }),
		Recent:      []billing.Entry{entry(rs.valid, billing.Reported, ""), entry(rs.forged, billing.Failed, "stripe unreachable"), entry(rs.failed, billing.Pending, "")},
	}
	f.details[bob] = console.CustomerDetail{CustomerRow: rows[1], Daily: days(30, func(int) uint64 { return 0 })}
	f.details[hostile] = console.CustomerDetail{CustomerRow: rows[2], Daily: days(30, func(int) uint64 { return 1 })}
	return f
}

func (f *fakeSource) Overview(ctx context.Context, now time.Time) (console.Overview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.overview
	o.States = clone(o.States)
	return o, f.fail
}

func (f *fakeSource) Customers(ctx context.Context, now time.Time) ([]console.CustomerRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]console.CustomerRow, len(f.customers))
	for i, r := range f.customers {
		r.States = clone(r.States)
		out[i] = r
	}
	return out, f.fail
}

func (f *fakeSource) Customer(ctx context.Context, customer string, now time.Time) (console.CustomerDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return console.CustomerDetail{}, f.fail
	}
	d, ok := f.details[customer]
	if !ok {
		return d, console.ErrNotFound
	}
	for _, r := range f.customers {
		if r.Customer == customer {
			d.CustomerRow = r
		}
	}
	return d, nil
}

func (f *fakeSource) Problems(ctx context.Context) ([]console.ProblemGroup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]console.ProblemGroup(nil), f.problems...), f.fail
}

func (f *fakeSource) Redrive(ctx context.Context, k console.ProblemKey) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redrives = append(f.redrives, k)
	for i, g := range f.problems {
		if g.ProblemKey != k {
			continue
		}
		f.problems = append(f.problems[:i:i], f.problems[i+1:]...)
		f.overview.States = clone(f.overview.States)
		f.overview.States[k.State] -= g.Events
		f.overview.States[billing.Pending] += g.Events
		for j, r := range f.customers {
			if r.Customer == k.Customer {
				r.States = clone(r.States)
				r.States[k.State] -= g.Events
				r.States[billing.Pending] += g.Events
				f.customers[j] = r
			}
		}
		return int(g.Events), nil
	}
	return 0, nil
}

func (f *fakeSource) Receipt(ctx context.Context, c string) (receipt.AnyReceipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.receipts[c]; ok {
		return r, nil
	}
	return nil, console.ErrNotFound
}

func (f *fakeSource) redriven() []console.ProblemKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]console.ProblemKey(nil), f.redrives...)
}

func clone(m map[billing.State]int64) map[billing.State]int64 {
	out := make(map[billing.State]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
