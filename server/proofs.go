package server

import (
	"fmt"

	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"

	"github.com/egressd/egressd/capabilities"
)

// checkProofTree walks the proofs under an invocation without following the
// same path twice as the ucanto validator would, and refuses trees that are
// too deep or too large before any signature is checked. A proof DAG can
// reference one delegation from many places, so the walk counts visits, not
// distinct delegations: that is the work the validator would do.
func checkProofTree(root ipld.Link, bs blockstore.BlockReader, maxProofs, maxDepth int) *capabilities.Failure {
	type node struct {
		link  ipld.Link
		depth int
	}
	visits := 0
	stack := []node{{root, 0}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok, _ := bs.Get(n.link); !ok {
			continue // not in the message: the validator reports it as unavailable
		}
		dlg, err := delegation.NewDelegationView(n.link, bs)
		if err != nil {
			continue // not a delegation: the validator reports it
		}
		for _, p := range dlg.Proofs() {
			if n.depth+1 > maxDepth {
				return &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("delegation chain is deeper than %d", maxDepth)}
			}
			visits++
			if visits > maxProofs {
				return &capabilities.Failure{FailureName: "ProofLimitExceeded",
					Message: fmt.Sprintf("invocation carries more than %d proofs", maxProofs)}
			}
			stack = append(stack, node{p, n.depth + 1})
		}
	}
	return nil
}

// ownBlocks returns the invocation viewed over only its own blocks (itself
// and its proofs). The validator copies an invocation's blockstore for every
// proof it resolves; over the whole message that is quadratic in the number
// of invocations per message.
func ownBlocks(inv invocation.Invocation) (invocation.Invocation, error) {
	bs, err := blockstore.NewBlockReader(blockstore.WithBlocksIterator(inv.Export()))
	if err != nil {
		return nil, err
	}
	return invocation.NewInvocationView(inv.Link(), bs)
}
