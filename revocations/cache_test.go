package revocations_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/revocations"
	"github.com/egressd/egressd/revocations/revocationstest"
	"github.com/egressd/egressd/revocations/sqlite"
)

func TestCachedConformance(t *testing.T) {
	revocationstest.Run(t, func(t *testing.T) revocations.Store {
		return revocations.NewCached(openSQLite(t), time.Minute, 0)
	})
}

// TestCachedReplicas: two replicas, each with its cache, share one store.
// The one that records a revocation applies it at once; the other once its
// cache has expired.
func TestCachedReplicas(t *testing.T) {
	ctx := context.Background()
	shared := &countingStore{Store: openSQLite(t)}
	clock := time.Now()
	now := func() time.Time { return clock }
	a, b := revocations.NewCached(shared, 5*time.Second, 0), revocations.NewCached(shared, 5*time.Second, 0)
	revocations.SetNow(a, now)
	revocations.SetNow(b, now)
	const dlg = "bafyreihiffu3ivgk7nirr2lfxguvw4obelaswi5zbcrk4exoul45guvzaq"
	r := revocations.Revocation{Delegation: dlg, Scope: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
		Cause: "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe"}

	for _, replica := range []*revocations.Cached{a, b} {
		if got := lookup(t, replica, dlg); len(got) != 0 {
			t.Fatalf("before revoking: %v", got)
		}
	}
	asked := shared.lookups.Load()
	if got := lookup(t, b, dlg); len(got) != 0 || shared.lookups.Load() != asked {
		t.Fatalf("a second lookup within the TTL = %v and asked the store %d times, want none and 0",
			got, shared.lookups.Load()-asked)
	}

	if err := a.Revoke(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, a, dlg); len(got) != 1 || got[0] != r {
		t.Fatalf("the revoking replica sees %v, want [%v] at once", got, r)
	}
	if got := lookup(t, b, dlg); len(got) != 0 {
		t.Fatalf("the other replica sees %v before its cache expires; the test expects the cached answer", got)
	}
	clock = clock.Add(5 * time.Second)
	if got := lookup(t, b, dlg); len(got) != 1 || got[0] != r {
		t.Fatalf("the other replica sees %v after the TTL, want [%v]", got, r)
	}
}

// TestCachedRevokeDuringLookup: a lookup that began before a revocation
// must not leave "not revoked" behind it.
func TestCachedRevokeDuringLookup(t *testing.T) {
	ctx := context.Background()
	const dlg = "bafyreig6gxs53ed27uelraxtu2m5j2lt6sv2rvcacuaetfa72yxjbsngwm"
	r := revocations.Revocation{Delegation: dlg, Scope: "did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9",
		Cause: "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe"}
	slow := &countingStore{Store: openSQLite(t)}
	c := revocations.NewCached(slow, time.Hour, 0)
	slow.during = func() {
		slow.during = nil
		if err := c.Revoke(ctx, r); err != nil {
			t.Error(err)
		}
	}
	// The store answers "none": it was asked before the revocation landed.
	if got := lookup(t, c, dlg); len(got) != 0 {
		t.Fatalf("first lookup = %v", got)
	}
	if got := lookup(t, c, dlg); len(got) != 1 || got[0] != r {
		t.Fatalf("lookup after a revocation that raced the first = %v, want [%v]", got, r)
	}
}

// countingStore counts lookups and can act in the middle of one.
type countingStore struct {
	revocations.Store
	lookups atomic.Int64
	during  func()
}

func (s *countingStore) Revocations(ctx context.Context, delegations []string) ([]revocations.Revocation, error) {
	s.lookups.Add(1)
	found, err := s.Store.Revocations(ctx, delegations)
	if s.during != nil {
		s.during()
	}
	return found, err
}

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.Revocations
}

func lookup(t *testing.T, s revocations.Store, cids ...string) []revocations.Revocation {
	t.Helper()
	got, err := s.Revocations(context.Background(), cids)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
