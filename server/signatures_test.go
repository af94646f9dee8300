package server

import (
	"testing"

	"github.com/storacha/go-ucanto/principal/ed25519/signer"
)

func TestSignatureCacheOnlyVouchesForWhatWasVerified(t *testing.T) {
	key, _ := signer.Generate()
	other, _ := signer.Generate()
	cache := newSignatureCache(16)
	v, err := cache.parsePrincipal(key.DID().String())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("delegation payload")
	sig := key.Sign(msg)
	for range 2 { // the second answer comes from the cache
		if !v.Verify(msg, sig) {
			t.Fatal("a valid signature was refused")
		}
	}
	if cache.verified.Len() != 1 {
		t.Fatalf("cache holds %d entries, want 1", cache.verified.Len())
	}
	if v.Verify([]byte("other payload"), sig) {
		t.Fatal("a cached signature vouched for other bytes")
	}
	if v.Verify(msg, other.Sign(msg)) {
		t.Fatal("another key's signature was accepted")
	}
	ov, _ := cache.parsePrincipal(other.DID().String())
	if ov.Verify(msg, sig) {
		t.Fatal("a cached signature vouched for another key")
	}
	if cache.verified.Len() != 1 {
		t.Fatalf("failures were cached: %d entries", cache.verified.Len())
	}
}
