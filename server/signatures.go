package server

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"
)

// signatureCache remembers signatures that checked out. A gateway attaches
// the same space delegation to millions of invocations; with the cache its
// signature is verified once instead of every time. Only successes are kept,
// keyed by a hash of the key, the signature and the signed bytes together, so
// an entry can only ever vouch for exactly what was verified.
type signatureCache struct {
	verified *lru.Cache[[sha256.Size]byte, struct{}]
}

func newSignatureCache(size int) *signatureCache {
	c, err := lru.New[[sha256.Size]byte, struct{}](size)
	if err != nil {
		// Only a non-positive size fails, and the size is a constant.
		panic(err)
	}
	return &signatureCache{verified: c}
}

// parsePrincipal returns a verifier for a did:key that consults the cache.
func (c *signatureCache) parsePrincipal(str string) (principal.Verifier, error) {
	v, err := parsePrincipal(str)
	if err != nil {
		return nil, err
	}
	return cachingVerifier{Verifier: v, cache: c}, nil
}

type cachingVerifier struct {
	principal.Verifier
	cache *signatureCache
}

// Verify answers from the cache when this exact signature over these exact
// bytes by this key was verified before.
func (v cachingVerifier) Verify(msg []byte, sig signature.Signature) bool {
	h := sha256.New()
	for _, part := range [][]byte{v.Encode(), sig.Bytes(), msg} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	if _, ok := v.cache.verified.Get(key); ok {
		return true
	}
	if !v.Verifier.Verify(msg, sig) {
		return false
	}
	v.cache.verified.Add(key, struct{}{})
	return true
}
