// Package wire reads ucanto agent messages (CARv1 files of DAG-CBOR blocks)
// from untrusted bytes. Every size, count and depth is checked while the
// bytes are read, before any IPLD node is built or any signature is
// checked, and every block must be in the one canonical encoding of its
// content, so that the same signed content always has the same CID.
package wire

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/ipld/block"
)

// Limits bound what one message may hold.
type Limits struct {
	// MaxBlocks is the most blocks a message may carry.
	MaxBlocks int
	// MaxBlockBytes is the largest block accepted.
	MaxBlockBytes int
	// MaxDepth is the deepest nesting of lists and maps inside a block.
	MaxDepth int
}

// Defaults: a gateway's message of 100 invocations with their delegations
// has a few hundred blocks of one or two kilobytes, nested about ten deep.
const (
	DefaultMaxBlocks     = 10_000
	DefaultMaxBlockBytes = 64 << 10
	DefaultMaxDepth      = 32
)

// maxHeaderBytes bounds the CAR header: one root CID and a version.
const maxHeaderBytes = 1 << 10

// Error is a message refused by Read. Name is what the caller is told:
// MalformedMessage, NonCanonicalBlock or MessageLimitExceeded.
type Error struct {
	Name string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func malformed(format string, args ...any) error {
	return &Error{Name: "MalformedMessage", Err: fmt.Errorf(format, args...)}
}

func overLimit(format string, args ...any) error {
	return &Error{Name: "MessageLimitExceeded", Err: fmt.Errorf(format, args...)}
}

func nonCanonical(format string, args ...any) error {
	return &Error{Name: "NonCanonicalBlock", Err: fmt.Errorf(format, args...)}
}

// Read parses a CARv1 agent message: its single root and its blocks in the
// order they came, each block once. It refuses, with an *Error, a message
// past lim, a block whose CID is not CIDv1 DAG-CBOR SHA2-256 or does not
// match its bytes, and a block that CheckBlock refuses.
func Read(body []byte, lim Limits) (ipld.Link, []ipld.Block, error) {
	if lim.MaxBlocks <= 0 {
		lim.MaxBlocks = DefaultMaxBlocks
	}
	if lim.MaxBlockBytes <= 0 {
		lim.MaxBlockBytes = DefaultMaxBlockBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	r := sections{data: body}
	header, err := r.next(maxHeaderBytes)
	if err != nil {
		return nil, nil, malformed("CAR header: %s", err)
	}
	root, err := readHeader(header)
	if err != nil {
		return nil, nil, err
	}

	var blocks []ipld.Block
	seen := map[string]bool{}
	for !r.done() {
		section, err := r.next(lim.MaxBlockBytes + maxCIDBytes)
		var tooLarge errSectionTooLarge
		if errors.As(err, &tooLarge) {
			return nil, nil, overLimit("block %d is %d bytes, the limit is %d", len(blocks)+1, int(tooLarge)-maxCIDBytes, lim.MaxBlockBytes)
		}
		if err != nil {
			return nil, nil, malformed("block %d: %s", len(blocks)+1, err)
		}
		n, id, err := cid.CidFromBytes(section)
		if err != nil {
			return nil, nil, malformed("block %d: its CID cannot be read", len(blocks)+1)
		}
		data := section[n:]
		if err := checkCID(id); err != nil {
			return nil, nil, err
		}
		if len(data) > lim.MaxBlockBytes {
			return nil, nil, overLimit("block %s is %d bytes, the limit is %d", id, len(data), lim.MaxBlockBytes)
		}
		if sum := sha256.Sum256(data); !bytes.Equal(sum[:], id.Hash()[2:]) {
			return nil, nil, malformed("block %s does not match its CID", id)
		}
		if seen[id.KeyString()] {
			continue
		}
		if len(seen) == lim.MaxBlocks {
			return nil, nil, overLimit("message holds more than %d blocks", lim.MaxBlocks)
		}
		if err := CheckBlock(data, lim.MaxDepth); err != nil {
			return nil, nil, nonCanonical("block %s: %s", id, err)
		}
		seen[id.KeyString()] = true
		// A copy of its own, so that a block kept (in a receipt, a cache)
		// does not keep the whole request body alive with it.
		blocks = append(blocks, block.NewBlock(cidlink.Link{Cid: id}, bytes.Clone(data)))
	}
	if !seen[root.(cidlink.Link).KeyString()] {
		return nil, nil, malformed("the root block %s is not in the message", root)
	}
	return root, blocks, nil
}

// maxCIDBytes is more than a CIDv1 with a SHA2-256 digest needs (36 bytes).
const maxCIDBytes = 64

// checkCID accepts the only kind of CID ucanto gives its blocks. Any other
// (another codec or hash, CIDv0, an identity hash) would name the same
// content a second way.
func checkCID(id cid.Cid) error {
	p := id.Prefix()
	if p.Version != 1 || p.Codec != cid.DagCBOR || p.MhType != multihash.SHA2_256 || p.MhLength != sha256.Size {
		return nonCanonical("block %s: blocks must be CIDv1, DAG-CBOR, SHA2-256", id)
	}
	return nil
}

// readHeader reads the CAR header {roots: [CID], version: 1}, held to the
// same canonical form as blocks (what the Go and JS CAR writers produce).
func readHeader(data []byte) (ipld.Link, error) {
	if err := CheckBlock(data, 4); err != nil {
		return nil, malformed("CAR header: %s", err)
	}
	nb := basicnode.Prototype.Map.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		return nil, malformed("CAR header is not DAG-CBOR")
	}
	n := nb.Build()
	version, err := n.LookupByString("version")
	if err != nil {
		return nil, malformed("CAR header has no version")
	}
	if v, err := version.AsInt(); err != nil || v != 1 {
		return nil, malformed("CAR version must be 1")
	}
	roots, err := n.LookupByString("roots")
	if err != nil || roots.Kind() != datamodel.Kind_List {
		return nil, malformed("CAR header has no roots")
	}
	if roots.Length() != 1 {
		return nil, malformed("agent message must have exactly one root, found %d", roots.Length())
	}
	first, _ := roots.LookupByIndex(0)
	link, err := first.AsLink()
	if err != nil {
		return nil, malformed("CAR root is not a CID")
	}
	cl, ok := link.(cidlink.Link)
	if !ok {
		return nil, malformed("CAR root is not a CID")
	}
	if err := checkCID(cl.Cid); err != nil {
		return nil, err
	}
	return cl, nil
}

// errSectionTooLarge is a section longer than its reader allows.
type errSectionTooLarge int

func (e errSectionTooLarge) Error() string { return fmt.Sprintf("section of %d bytes", int(e)) }

// sections reads the varint-prefixed sections of a CAR.
type sections struct {
	data []byte
	pos  int
}

func (s *sections) done() bool { return s.pos >= len(s.data) }

func (s *sections) next(max int) ([]byte, error) {
	n, read, err := varint.FromUvarint(s.data[s.pos:])
	if err != nil {
		return nil, errors.New("bad section length")
	}
	s.pos += read
	if n == 0 || n > uint64(len(s.data)-s.pos) {
		return nil, fmt.Errorf("section length %d does not fit the %d bytes left", n, len(s.data)-s.pos)
	}
	if n > uint64(max) {
		return nil, errSectionTooLarge(n)
	}
	out := s.data[s.pos : s.pos+int(n)]
	s.pos += int(n)
	return out, nil
}
