package server

import (
	"fmt"

	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"

	"github.com/egressd/egressd/capabilities"
)

// invocationBlocks walks the proofs under an invocation the way the ucanto
// validator would and returns the invocation over only its own blocks
// (itself and its proofs). Trees that are too deep or too large are refused
// before any signature is checked: a proof DAG can reference one delegation
// from many places, so the walk counts visits, the work the validator would do.
//
// Viewing each invocation over its own blocks also matters for speed: the
// validator copies an invocation's blockstore for every proof it resolves,
// which over a whole 100-invocation message is quadratic.
func invocationBlocks(root ipld.Link, msg blockstore.BlockReader, maxProofs, maxDepth int) (invocation.Invocation, *capabilities.Failure, error) {
	own, err := blockstore.NewBlockStore()
	if err != nil {
		return nil, nil, err
	}
	type node struct {
		link  ipld.Link
		depth int
	}
	rootBlock, ok, _ := msg.Get(root)
	if !ok {
		return nil, nil, fmt.Errorf("invocation block %s is missing", root)
	}
	// The invocation reads its proofs from own lazily, so own can be filled
	// by the walk below; decoding it once here saves a decode per invocation.
	inv, err := invocation.NewInvocation(rootBlock, own)
	if err != nil {
		return nil, nil, err
	}
	visits := 0
	stack := []node{{root, 0}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		blk, ok, _ := msg.Get(n.link)
		if !ok {
			continue // not in the message: the validator reports it as unavailable
		}
		if err := own.Put(blk); err != nil {
			return nil, nil, err
		}
		var dlg delegation.Delegation = inv
		if n.depth > 0 {
			if dlg, err = delegation.NewDelegation(blk, msg); err != nil {
				continue // not a delegation: the validator reports it
			}
		}
		for _, p := range dlg.Proofs() {
			if n.depth+1 > maxDepth {
				return nil, &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("delegation chain is deeper than %d", maxDepth)}, nil
			}
			visits++
			if visits > maxProofs {
				return nil, &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("invocation carries more than %d proofs", maxProofs)}, nil
			}
			stack = append(stack, node{p, n.depth + 1})
		}
	}
	return inv, nil, nil
}
