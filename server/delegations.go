package server

import (
	"context"
	"iter"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/capabilities"
)

// decodedDelegations keeps delegations decoded, by CID, across messages. A
// gateway attaches the same space delegation to every invocation it sends;
// decoding it (go-ucanto's bindnode decoding is costly) once instead of in
// every message, and again for every invocation the validator checks, is a
// good part of what a record costs. The message's blocks are checked
// against their CIDs before anything is decoded (wire.Read), so a CID names
// exactly one delegation. Each is decoded over a store of its own block
// alone: an entry holds no message's blocks, and its proofs are found in
// the message being validated, as before.
type decodedDelegations struct {
	cache *lru.Cache[string, decodedDelegation]
}

type decodedDelegation struct {
	dlg delegation.Delegation
	// refused is checkUCANEncoding's verdict on it, a function of its block.
	refused *capabilities.Failure
}

// decodedDelegationCacheSize bounds the delegations kept: a few KB each.
const decodedDelegationCacheSize = 4096

func newDecodedDelegations() *decodedDelegations {
	c, err := lru.New[string, decodedDelegation](decodedDelegationCacheSize)
	if err != nil {
		panic(err) // only a non-positive size fails
	}
	return &decodedDelegations{cache: c}
}

// decode returns the delegation in blk and its encoding check, decoding it
// the first time its CID is seen; an error when blk is not a delegation
// (not remembered: such blocks are rare and the validator reports them).
func (d *decodedDelegations) decode(blk ipld.Block) (delegation.Delegation, *capabilities.Failure, error) {
	key := blk.Link().String()
	if e, ok := d.cache.Get(key); ok {
		return e.dlg, e.refused, nil
	}
	alone, err := blockstore.NewBlockReader(blockstore.WithBlocks([]ipld.Block{blk}))
	if err != nil {
		return nil, nil, err
	}
	dlg, err := delegation.NewDelegation(blk, alone)
	if err != nil {
		return nil, nil, err
	}
	e := decodedDelegation{dlg: dlg, refused: checkUCANEncoding(dlg)}
	d.cache.Add(key, e)
	return e.dlg, e.refused, nil
}

// proofResolver resolves the validator's proofs from the invocation's own
// blocks through the cache; a proof not among them is unavailable, as
// when the validator reads the blocks itself.
func (d *decodedDelegations) proofResolver(blocks blockstore.BlockReader) validator.ProofResolverFunc {
	return func(ctx context.Context, link ucan.Link) (delegation.Delegation, validator.UnavailableProof) {
		if blk, ok, err := blocks.Get(link); err == nil && ok {
			if dlg, _, err := d.decode(blk); err == nil {
				return dlg, nil
			}
		}
		return validator.ProofUnavailable(ctx, link)
	}
}

// rootOnly shows the validator an invocation without its proofs' blocks, so
// that it asks the proof resolver for them (and gets them decoded once)
// instead of decoding them from the blocks for every invocation. Only the
// validator sees it: receipts are issued for the invocation itself. With it,
// and the cached delegations each decoded over its own block alone, every
// proof at every depth passes through the resolver: a check wrapped around
// the resolver (onlyOwnAttestations) sees them all.
type rootOnly struct {
	invocation.Invocation
}

func (r rootOnly) Blocks() iter.Seq2[ipld.Block, error] {
	return func(yield func(ipld.Block, error) bool) {
		yield(r.Root(), nil)
	}
}
