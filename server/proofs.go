package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/server/wire"
)

// messageReader reads the invocations of one message: it decodes each
// delegation block once for the whole message, and counts what validating
// them will decode against a budget.
type messageReader struct {
	msg                 blockstore.BlockReader
	decoded             *decodedDelegations
	maxProofs, maxDepth int
	maxVisited, visited int64
	delegations         map[string]delegation.Delegation
	refused             map[string]*capabilities.Failure
	costs               map[string]int64
}

// errDecodeBudget is a message whose proof walks visit more bytes than its
// budget allows.
var errDecodeBudget = errors.New("proof walks past the message's decode budget")

func newMessageReader(msg blockstore.BlockReader, decoded *decodedDelegations, maxProofs, maxDepth int, maxVisited int64) *messageReader {
	return &messageReader{msg: msg, decoded: decoded, maxProofs: maxProofs, maxDepth: maxDepth, maxVisited: maxVisited,
		delegations: map[string]delegation.Delegation{}, refused: map[string]*capabilities.Failure{}, costs: map[string]int64{}}
}

// cost estimates the bytes the ucanto validator decodes to validate the
// delegation at link: the block itself, and for each of its capabilities
// (each may match a claim, and each match resolves the proofs again) the
// cost of its proofs. Without it, a delegation repeating one capability
// hundreds of times over large proofs made a 1.8 MB message cost 87 s.
func (r *messageReader) cost(link ipld.Link, depth int) int64 {
	key := link.String()
	if c, ok := r.costs[key]; ok {
		return c
	}
	blk, ok, _ := r.msg.Get(link)
	if !ok {
		return 0
	}
	c := int64(len(blk.Bytes()))
	if d, _ := r.delegation(blk); d != nil && depth < r.maxDepth {
		c = saturatingAdd(c, r.proofsCost(d, depth))
	}
	r.costs[key] = c
	return c
}

// proofsCost is what validating dlg's proofs costs, once per capability.
func (r *messageReader) proofsCost(dlg delegation.Delegation, depth int) int64 {
	var sub int64
	for _, p := range dlg.Proofs() {
		sub = saturatingAdd(sub, r.cost(p, depth+1))
	}
	n := int64(max(1, len(dlg.Capabilities())))
	if sub > 0 && n > math.MaxInt64/4/sub {
		return math.MaxInt64 / 4
	}
	return n * sub
}

func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64/4-b {
		return math.MaxInt64 / 4
	}
	return a + b
}

// delegation decodes the delegation in blk (once across messages, see
// decodedDelegations), and checks its encoding once; nil when blk is not a
// delegation.
func (r *messageReader) delegation(blk ipld.Block) (delegation.Delegation, *capabilities.Failure) {
	key := blk.Link().String()
	if d, ok := r.delegations[key]; ok {
		return d, r.refused[key]
	}
	d, refused, err := r.decoded.decode(blk)
	if err != nil {
		d, refused = nil, nil // not a delegation: the validator reports it
	}
	r.delegations[key], r.refused[key] = d, refused
	return d, refused
}

// readInvocation walks the proofs under an invocation the way the ucanto
// validator would and returns the invocation over only its own blocks
// (itself and its proofs). Trees that are too deep or too large, and UCANs
// whose bytes could be re-encoded under the same signature, are refused
// before any signature is checked: a proof DAG can reference one delegation
// from many places, so the walk counts visits, the work the validator would do.
//
// Viewing each invocation over its own blocks also matters for speed: the
// validator copies an invocation's blockstore for every proof it resolves,
// which over a whole 100-invocation message is quadratic.
func (r *messageReader) readInvocation(root ipld.Link) (incoming, error) {
	item := incoming{link: root, identity: root}
	own, err := blockstore.NewBlockStore()
	if err != nil {
		return item, err
	}
	type node struct {
		link  ipld.Link
		depth int
	}
	rootBlock, ok, _ := r.msg.Get(root)
	if !ok {
		return item, fmt.Errorf("invocation block %s is missing", root)
	}
	// The invocation reads its proofs from own lazily, so own can be filled
	// by the walk below; decoding it once here saves a decode per invocation.
	inv, err := invocation.NewInvocation(rootBlock, own)
	if err != nil {
		return item, err
	}
	visits := 0
	stack := []node{{root, 0}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		blk, ok, _ := r.msg.Get(n.link)
		if !ok {
			continue // not in the message: the validator reports it as unavailable
		}
		if err := own.Put(blk); err != nil {
			return item, err
		}
		var (
			dlg     delegation.Delegation = inv
			refused *capabilities.Failure
		)
		if n.depth == 0 {
			refused = checkUCANEncoding(inv)
		} else if dlg, refused = r.delegation(blk); dlg == nil {
			continue
		}
		if refused != nil {
			item.refused = refused
			return item, nil
		}
		for _, p := range dlg.Proofs() {
			if n.depth+1 > r.maxDepth {
				item.refused = &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("delegation chain is deeper than %d", r.maxDepth)}
				return item, nil
			}
			visits++
			if visits > r.maxProofs {
				item.refused = &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("invocation carries more than %d proofs", r.maxProofs)}
				return item, nil
			}
			stack = append(stack, node{p, n.depth + 1})
		}
	}
	// What validating this invocation will decode, against the message's budget.
	r.visited = saturatingAdd(r.visited, saturatingAdd(int64(len(rootBlock.Bytes())), r.proofsCost(inv, 0)))
	if r.visited > r.maxVisited {
		return item, errDecodeBudget
	}
	item.inv, item.blocks = inv, own
	if len(inv.Proofs()) == 0 {
		twin, hadPrf, err := proofsTwin(rootBlock.Bytes())
		if err != nil {
			return item, err
		}
		item.twin = twin
		if !hadPrf {
			item.identity = twin
		}
	}
	return item, nil
}

// checkUCANEncoding refuses the UCAN fields that go-ucanto decodes loosely,
// so that they could change the block, and so its CID, without changing the
// signed payload: a DID may be written as a key or as a generic DID, and a
// signature may carry bytes past its declared length.
func checkUCANEncoding(dlg delegation.Delegation) *capabilities.Failure {
	model := dlg.Data().Model()
	for _, field := range []struct {
		name string
		raw  []byte
		id   did.DID
	}{{"iss", model.Iss, dlg.Issuer().DID()}, {"aud", model.Aud, dlg.Audience().DID()}} {
		canonical, err := did.Parse(field.id.String())
		if err != nil || !bytes.Equal(canonical.Bytes(), field.raw) {
			return &capabilities.Failure{FailureName: "NonCanonicalBlock",
				Message: fmt.Sprintf("delegation %s: %s is not in the canonical encoding of %s", dlg.Link(), field.name, field.id)}
		}
	}
	// go-ucanto decodes "fct" absent and "fct": [] alike, and signs them
	// alike; no client writes the empty list (Go and JS leave it out).
	if fct, ok, _ := wire.TopLevelField(dlg.Root().Bytes(), "fct"); ok && len(fct) == 1 && fct[0] == 0x80 {
		return &capabilities.Failure{FailureName: "NonCanonicalBlock",
			Message: fmt.Sprintf("delegation %s: an empty fct list is written by leaving fct out", dlg.Link())}
	}
	sig := signature.Decode(model.S)
	if !bytes.Equal(signature.NewSignature(sig.Code(), sig.Raw()).Bytes(), model.S) || uint64(len(sig.Raw())) != sig.Size() {
		return &capabilities.Failure{FailureName: "NonCanonicalBlock",
			Message: fmt.Sprintf("delegation %s: its signature is not in canonical form", dlg.Link())}
	}
	return nil
}

// proofsTwin returns the CID of the other encoding of an invocation without
// proofs: go-ucanto leaves "prf" out, JS ucanto writes "prf": [], and
// both sign the same payload. The block is canonical DAG-CBOR (checked by
// the wire package), so re-encoding it is exact.
func proofsTwin(data []byte) (twin ipld.Link, hadPrf bool, err error) {
	nb := basicnode.Prototype.Map.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		return nil, false, err
	}
	n := nb.Build()
	if prf, err := n.LookupByString("prf"); err == nil && prf != nil {
		hadPrf = true
	}
	out := basicnode.Prototype.Map.NewBuilder()
	ma, err := out.BeginMap(n.Length() + 1)
	if err != nil {
		return nil, false, err
	}
	for it := n.MapIterator(); !it.Done(); {
		k, v, err := it.Next()
		if err != nil {
			return nil, false, err
		}
		key, _ := k.AsString()
		if key == "prf" {
			continue
		}
		if err := ma.AssembleKey().AssignString(key); err != nil {
			return nil, false, err
		}
		if err := ma.AssembleValue().AssignNode(v); err != nil {
			return nil, false, err
		}
	}
	if !hadPrf {
		if err := ma.AssembleKey().AssignString("prf"); err != nil {
			return nil, false, err
		}
		la, err := ma.AssembleValue().BeginList(0)
		if err != nil {
			return nil, false, err
		}
		if err := la.Finish(); err != nil {
			return nil, false, err
		}
	}
	if err := ma.Finish(); err != nil {
		return nil, false, err
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(out.Build(), &buf); err != nil {
		return nil, false, err
	}
	twin, err = linkOf(buf.Bytes())
	return twin, hadPrf, err
}

// linkOf is the CIDv1 DAG-CBOR SHA2-256 link of data, as ucanto names blocks.
func linkOf(data []byte) (ipld.Link, error) {
	sum, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		return nil, err
	}
	return cidlink.Link{Cid: cid.NewCidV1(cid.DagCBOR, sum)}, nil
}
