package server

import (
	"context"
	"testing"

	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	"github.com/storacha/go-ucanto/ucan"
)

// A delegation is decoded once whatever the number of messages it comes
// in, but the cache never stands in for a proof the message left out: the
// validator must find it unavailable, as it would without the cache.
func TestDecodedDelegationsServeOnlyProofsTheMessageCarries(t *testing.T) {
	space, _ := signer.Generate()
	gateway, _ := signer.Generate()
	dlg, err := delegation.Delegate(space, gateway, []ucan.Capability[ucan.NoCaveats]{
		ucan.NewCapability("space/content/serve/*", space.DID().String(), ucan.NoCaveats{})})
	if err != nil {
		t.Fatal(err)
	}
	decoded := newDecodedDelegations()
	first, _, err := decoded.decode(dlg.Root())
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := decoded.decode(dlg.Root())
	if first != again || decoded.cache.Len() != 1 {
		t.Fatalf("the delegation was decoded twice (%d cached)", decoded.cache.Len())
	}

	carrying, _ := blockstore.NewBlockReader(blockstore.WithBlocks([]ipld.Block{dlg.Root()}))
	got, unavailable := decoded.proofResolver(carrying)(context.Background(), dlg.Link())
	if unavailable != nil || got.Link().String() != dlg.Link().String() {
		t.Fatalf("a proof the message carries was not resolved: %v", unavailable)
	}
	empty, _ := blockstore.NewBlockReader()
	if _, unavailable := decoded.proofResolver(empty)(context.Background(), dlg.Link()); unavailable == nil {
		t.Fatal("a cached delegation stood in for a proof the message left out")
	}
}
