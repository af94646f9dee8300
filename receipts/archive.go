package receipts

import (
	"fmt"
	"io"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"

	"github.com/storacha/go-ucanto/core/car"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/ipld/block"
	"github.com/storacha/go-ucanto/core/ipld/codec/cbor"
	"github.com/storacha/go-ucanto/core/ipld/hash/sha256"
	"github.com/storacha/go-ucanto/core/receipt"
	rdm "github.com/storacha/go-ucanto/core/receipt/datamodel"
)

// Archive encodes a receipt as the CAR that receipt.Extract reads back, the
// same format as the receipt's own Archive method. That method walks the
// invocation and decodes every proof again to find the blocks; a receipt
// issued by the server already holds exactly those blocks, so they are
// written as they are.
func Archive(rcpt receipt.AnyReceipt) ([]byte, error) {
	variant, err := block.Encode(&rdm.ArchiveModel{UcanReceipt0_9_1: rcpt.Root().Link()}, rdm.ArchiveType(), cbor.Codec, sha256.Hasher)
	if err != nil {
		return nil, fmt.Errorf("archiving receipt: %w", err)
	}
	blocks := func(yield func(ipld.Block, error) bool) {
		for b, err := range rcpt.Blocks() {
			if !yield(b, err) || err != nil {
				return
			}
		}
		yield(variant, nil)
	}
	archive, err := io.ReadAll(car.Encode([]ipld.Link{variant.Link()}, blocks))
	if err != nil {
		return nil, fmt.Errorf("archiving receipt: %w", err)
	}
	return archive, nil
}

// Invocation returns the CID of the invocation rcpt is for, read from the
// receipt's own block: rcpt.Ran() would decode the whole invocation, which
// the receipt carries, only to hand back its link.
func Invocation(rcpt receipt.AnyReceipt) (string, error) {
	node, err := ipldprime.Decode(rcpt.Root().Bytes(), dagcbor.Decode)
	if err != nil {
		return "", fmt.Errorf("reading receipt %s: %w", rcpt.Root().Link(), err)
	}
	ocm, err := node.LookupByString("ocm")
	if err != nil {
		return "", fmt.Errorf("reading receipt %s: %w", rcpt.Root().Link(), err)
	}
	ran, err := ocm.LookupByString("ran")
	if err != nil {
		return "", fmt.Errorf("reading receipt %s: %w", rcpt.Root().Link(), err)
	}
	link, err := ran.AsLink()
	if err != nil {
		return "", fmt.Errorf("reading receipt %s: ran is not a link: %w", rcpt.Root().Link(), err)
	}
	return link.String(), nil
}
