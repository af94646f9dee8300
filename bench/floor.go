package bench

import (
	"fmt"
	"time"

	"github.com/storacha/go-ucanto/principal/ed25519/signer"
)

// Floor is what the unavoidable cryptography of one invocation costs on this
// machine: verifying the invocation's and the delegation's signatures and
// signing the receipt.
type Floor struct {
	Sign, Verify time.Duration
}

// PerInvocation is two verifications and one signature.
func (f Floor) PerInvocation() time.Duration { return 2*f.Verify + f.Sign }

func (f Floor) String() string {
	return fmt.Sprintf("ed25519 sign %.1fµs, verify %.1fµs: %.0fµs per invocation, at most %.0f invocations/s per core",
		us(f.Sign), us(f.Verify), us(f.PerInvocation()), 1/f.PerInvocation().Seconds())
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// MeasureFloor times n ed25519 signatures and verifications with the key
// type ucanto uses.
func MeasureFloor(n int) (Floor, error) {
	key, err := signer.Generate()
	if err != nil {
		return Floor{}, err
	}
	msg := make([]byte, 300) // about a UCAN's signed payload
	start := time.Now()
	var sig []byte
	for range n {
		sig = key.Sign(msg).Raw()
	}
	sign := time.Since(start) / time.Duration(n)
	verifier := key.Verifier()
	s := key.Sign(msg)
	start = time.Now()
	for range n {
		if !verifier.Verify(msg, s) {
			return Floor{}, fmt.Errorf("signature %x does not verify", sig)
		}
	}
	return Floor{Sign: sign, Verify: time.Since(start) / time.Duration(n)}, nil
}
