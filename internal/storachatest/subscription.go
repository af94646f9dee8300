package storachatest

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// SubscriptionID returns the subscription ID Storacha gives the provision of
// space: the CID (version 1, dag-cbor, sha2-256, base32) of the dag-cbor map
// {consumer: space}, as createProvisionSubscriptionId in w3infra's
// upload-api/stores/provisions.js computes it. One space can thus be
// provisioned once per provider.
func SubscriptionID(space string) (string, error) {
	// dag-cbor of a one-entry map of text to text: a map header, then the
	// key and the value as text strings.
	block := []byte{0xa1}
	block = cborText(block, "consumer")
	block = cborText(block, space)
	mh, err := multihash.Sum(block, multihash.SHA2_256, -1)
	if err != nil {
		return "", fmt.Errorf("hashing the subscription block of %s: %w", space, err)
	}
	return cid.NewCidV1(cid.DagCBOR, mh).String(), nil
}

// cborText appends s as a CBOR text string (major type 3), with the
// shortest length header, as dag-cbor requires.
func cborText(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 24:
		b = append(b, 0x60|byte(n))
	case n < 1<<8:
		b = append(b, 0x78, byte(n))
	case n < 1<<16:
		b = append(b, 0x79, byte(n>>8), byte(n))
	default:
		b = append(b, 0x7a, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// CheckSubscriptionID reports, wrapping ErrSubscriptionID, when subscription
// is not SubscriptionID(space). Storacha's readers do not check it, but its
// only writer of consumer and subscription rows (provisions.js, through
// upload-api/tables/consumer.js and subscription.js) always keys them so,
// and its conditional puts rely on it to refuse a second provision.
func CheckSubscriptionID(space, subscription string) error {
	want, err := SubscriptionID(space)
	if err != nil {
		return &RowError{Table: Consumer, Attribute: "subscription", Kind: ErrSubscriptionID, Detail: err.Error()}
	}
	if subscription != want {
		return &RowError{Table: Consumer, Attribute: "subscription", Kind: ErrSubscriptionID,
			Detail: fmt.Sprintf("space %s has subscription %s, got %q", space, want, subscription)}
	}
	return nil
}
