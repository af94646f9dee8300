package account_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/principal/absentee"
	"github.com/storacha/go-ucanto/ucan"
	vdm "github.com/storacha/go-ucanto/validator/datamodel"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// TestReDelegatedAttestationCannotReadAnotherAccount: mallory holds an
// honest grant for her own account: the account's delegation to her agent
// and the service's ucan/attest of it (audience: her agent). Her agent then
// issues its own ucan/attest (with: the service) naming a delegation it
// forged from alice's account (did:mailto cannot sign: the delegation is
// unsigned, as every account delegation is), with the service's attestation
// as proof. go-ucanto v0.8.2 derives the claimed attestation from the
// service's without comparing nb.proof (ResolveCapability reads nb from the
// claim, so VerifySession's derives compares the claim's proof with itself),
// and the service's attestation is self-issued: the forged delegation is
// "attested", and mallory reads alice's egress.
func TestReDelegatedAttestationCannotReadAnotherAccount(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	s := newService(t, now)
	a1 := s.provision(alice)
	s.provision(bob)
	s.record(event(alice, a1, now, 4242))

	mallory := newKey(t)
	own := s.grant(bob, mallory, time.Time{}) // an honest grant, for her own account

	forged, err := delegation.Delegate(absentee.From(mustDID(alice)), mallory,
		[]ucan.Capability[ucan.CaveatBuilder]{ucan.NewCapability[ucan.CaveatBuilder](capabilities.AccountEgressGet, alice, ucan.NoCaveats{})},
		delegation.WithNoExpiration())
	if err != nil {
		t.Fatal(err)
	}
	selfAttest, err := delegation.Delegate(mallory, mallory,
		[]ucan.Capability[vdm.AttestationModel]{ucan.NewCapability("ucan/attest", s.signer.DID().String(), vdm.AttestationModel{Proof: forged.Link()})},
		delegation.WithNoExpiration(), delegation.WithProof(delegation.FromDelegation(own.Attestation)))
	if err != nil {
		t.Fatal(err)
	}

	r := s.get(mallory, alice, capabilities.EgressGetCaveats{}, forged, selfAttest)
	if name, msg := client.OutcomeFailure(r); name != "" {
		t.Logf("refused: %s: %s", name, msg)
		return
	}
	t.Fatalf("mallory, holding only bob's grant, read alice's egress: %v", fmt.Sprint(okJSON(t, r)))
}
