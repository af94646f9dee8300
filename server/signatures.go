package server

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/storacha/go-ucanto/principal"
	edverifier "github.com/storacha/go-ucanto/principal/ed25519/verifier"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"
)

// signatureCache remembers signatures that checked out. A gateway attaches
// the same space delegation to millions of invocations; with the cache its
// signature is verified once instead of every time. Only successes are kept,
// keyed by a hash of the key, the signature and the signed bytes together, so
// an entry can only ever vouch for exactly what was verified.
//
// It also keeps the expanded form of the ed25519 keys it verifies with (the
// decompressed point and its precomputed multiples): a gateway signs every
// invocation with one key, and verifying against the expanded key costs
// about half of what crypto/ed25519 spends decompressing the key each time.
//
// And it keeps the verifiers it parsed, by did:key: parsing one decodes its
// base58, which the validator asks for at every delegation it checks.
type signatureCache struct {
	verified  *lru.Cache[[sha256.Size]byte, struct{}]
	keys      *lru.Cache[string, *voi.ExpandedPublicKey]
	verifiers *lru.Cache[string, principal.Verifier]
}

// expandedKeyCacheSize bounds the expanded keys kept: each is about 1.5 KB
// (its table of multiples), so this is at most some 1.5 MB, for more
// gateway and space keys than are in use at once.
const expandedKeyCacheSize = 1024

func newSignatureCache(size int) *signatureCache {
	c, err := lru.New[[sha256.Size]byte, struct{}](size)
	if err != nil {
		// Only a non-positive size fails, and the size is a constant.
		panic(err)
	}
	keys, err := lru.New[string, *voi.ExpandedPublicKey](expandedKeyCacheSize)
	if err != nil {
		panic(err)
	}
	verifiers, err := lru.New[string, principal.Verifier](expandedKeyCacheSize)
	if err != nil {
		panic(err)
	}
	return &signatureCache{verified: c, keys: keys, verifiers: verifiers}
}

// parsePrincipal returns a verifier for a did:key that consults the cache.
func (c *signatureCache) parsePrincipal(str string) (principal.Verifier, error) {
	if v, ok := c.verifiers.Get(str); ok {
		return v, nil
	}
	v, err := parsePrincipal(str)
	if err != nil {
		return nil, err
	}
	cv := cachingVerifier{Verifier: v, cache: c}
	c.verifiers.Add(str, cv)
	return cv, nil
}

type cachingVerifier struct {
	principal.Verifier
	cache *signatureCache
}

// Verify answers from the cache when this exact signature over these exact
// bytes by this key was verified before.
func (v cachingVerifier) Verify(msg []byte, sig signature.Signature) bool {
	key := signatureKey(v.Encode(), sig.Bytes(), msg)
	if _, ok := v.cache.verified.Get(key); ok {
		return true
	}
	if !v.cache.verify(v.Verifier, msg, sig) {
		return false
	}
	v.cache.verified.Add(key, struct{}{})
	return true
}

// signatureKey names a verified signature in the cache.
func signatureKey(verifier, sig, msg []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, part := range [][]byte{verifier, sig, msg} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// stdlibVerification is crypto/ed25519's verification: the cofactorless
// equation, small-order keys and R allowed, non-canonical key encodings
// allowed, non-canonical S and R refused. A signature gets the same answer
// here as from go-ucanto's verifier, only sooner.
var stdlibVerification = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verify checks an ed25519 signature against the expanded key, and leaves
// any other kind of verifier or signature to v.
func (c *signatureCache) verify(v principal.Verifier, msg []byte, sig signature.Signature) bool {
	if v.Code() != edverifier.Code || sig.Code() != signature.EdDSA {
		return v.Verify(msg, sig)
	}
	raw := v.Raw()
	x, ok := c.keys.Get(string(raw))
	if !ok {
		var err error
		if x, err = voi.NewExpandedPublicKey(voi.PublicKey(raw)); err != nil {
			// A key that does not decompress: crypto/ed25519 refuses it too.
			return v.Verify(msg, sig)
		}
		c.keys.Add(string(raw), x)
	}
	return voi.VerifyExpandedWithOptions(x, msg, sig.Raw(), stdlibVerification)
}
