package sqlite_test

import (
	"context"
	"testing"

	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/revocations"
	"github.com/egressd/egressd/revocations/revocationstest"
)

func TestConformance(t *testing.T) {
	revocationstest.Run(t, func(t *testing.T) revocations.Store {
		db, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s := db.Revocations
		return s
	})
}

// TestRevocationsSurviveReopening checks a revocation is on disk once Revoke
// returns: a store opened afterwards on the same directory finds it.
func TestRevocationsSurviveReopening(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := revocations.Revocation{
		Delegation: "bafyreihiffu3ivgk7nirr2lfxguvw4obelaswi5zbcrk4exoul45guvzaq",
		Scope:      "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
		Cause:      "bafyreia3ilf2vq4zmwllzq6xgg3cmzdwr6zzufslm6bdjlrhznzm2pqlpe",
	}
	first, err := embedded.Open(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Revocations.Revoke(ctx, r); err != nil {
		t.Fatal(err)
	}
	// A second process on the same data directory sees it at once.
	second, err := embedded.Open(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got, err := second.Revocations.Revocations(ctx, []string{r.Delegation}); err != nil || len(got) != 1 || got[0] != r {
		t.Fatalf("Revocations from a second store = %v, %v; want [%v]", got, err, r)
	}
	first.Close()
	third, err := embedded.Open(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if got, err := third.Revocations.Revocations(ctx, []string{r.Delegation}); err != nil || len(got) != 1 || got[0] != r {
		t.Fatalf("Revocations after reopening = %v, %v; want [%v]", got, err, r)
	}
}
