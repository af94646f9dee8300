package dynamodb

import (
	"bytes"
	"fmt"

	gocid "github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
)

// SubscriptionID is the subscription a space is provisioned under, as
// w3infra derives it: the CID (CIDv1, DAG-CBOR, SHA2-256, base32) of the
// DAG-CBOR map {consumer: space}.
func SubscriptionID(space string) (string, error) {
	id, err := cidOf(func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "consumer", qp.String(space))
	})
	if err != nil {
		return "", fmt.Errorf("deriving subscription of %s: %w", space, err)
	}
	return id, nil
}

// ProvisionCause is the cause egressd writes on the consumer and
// subscription rows of a provisioning. Storacha writes there the CID of the
// provider/add invocation that provisioned the space, and its decoders read
// the attribute as a link (parseLink); egressd provisions on an operator's
// command, with no invocation, so it writes the CID (CIDv1, DAG-CBOR,
// SHA2-256, base32, the form of an invocation's CID) of the capability that
// invocation would have carried:
//
//	{can: "provider/add", with: customer, nb: {consumer: space, provider: provider}}
//
// It is deterministic: provisioning again computes the same cause (so a row
// is rewritten identically, and Storacha's own condition, same cause, holds),
// and anyone can recompute it to tell a row egressd wrote from one an
// invocation wrote. It addresses no block: nothing in Storacha fetches it.
func ProvisionCause(space, customer, provider string) (string, error) {
	id, err := cidOf(func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "can", qp.String("provider/add"))
		qp.MapEntry(ma, "with", qp.String(customer))
		qp.MapEntry(ma, "nb", qp.Map(2, func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "consumer", qp.String(space))
			qp.MapEntry(ma, "provider", qp.String(provider))
		}))
	})
	if err != nil {
		return "", fmt.Errorf("deriving the cause of provisioning %s: %w", space, err)
	}
	return id, nil
}

// cidOf is the CIDv1 (DAG-CBOR, SHA2-256) of the map build assembles,
// encoded with DAG-CBOR's canonical key order, as JavaScript's
// @ipld/dag-cbor encodes it.
func cidOf(build func(datamodel.MapAssembler)) (string, error) {
	node, err := qp.BuildMap(basicnode.Prototype.Any, -1, build)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(node, &buf); err != nil {
		return "", err
	}
	c, err := gocid.Prefix{Version: 1, Codec: gocid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}.Sum(buf.Bytes())
	if err != nil {
		return "", err
	}
	return c.String(), nil
}
