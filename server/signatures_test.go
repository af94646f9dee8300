package server

import (
	"fmt"
	"testing"

	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"
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

// The expanded-key verification must answer every signature exactly as
// crypto/ed25519 (go-ucanto's verifier) does, edge cases included: a
// signature one answers yes to and the other no would change who is
// authorized.
func TestSignatureVerificationAgreesWithCryptoEd25519(t *testing.T) {
	key, _ := signer.Generate()
	cache := newSignatureCache(16)
	plain, err := parsePrincipal(key.DID().String())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("invocation payload")
	good := key.Sign(msg).Raw()
	// The order of the group, little-endian: S + L encodes the same scalar
	// non-canonically, which crypto/ed25519 refuses.
	order := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	sPlusL := append([]byte(nil), good...)
	carry := 0
	for i := range 32 {
		sum := int(sPlusL[32+i]) + int(order[i]) + carry
		sPlusL[32+i], carry = byte(sum), sum>>8
	}
	smallOrderR := append(make([]byte, 32), good[32:]...)
	smallOrderR[0] = 1 // the identity point
	cases := map[string][]byte{
		"valid":         good,
		"S not reduced": sPlusL,
		"identity R":    smallOrderR,
		"short":         good[:63],
		"long":          append(append([]byte(nil), good...), 0),
		"zero":          make([]byte, 64),
	}
	for bit := range 512 {
		flipped := append([]byte(nil), good...)
		flipped[bit/8] ^= 1 << (bit % 8)
		cases[fmt.Sprintf("bit %d flipped", bit)] = flipped
	}
	for name, raw := range cases {
		sig := signature.NewSignature(signature.EdDSA, raw)
		want := plain.Verify(msg, sig)
		if got := cache.verify(plain, msg, sig); got != want {
			t.Errorf("%s: expanded-key verification says %v, crypto/ed25519 %v", name, got, want)
		}
	}
}
