package client

import (
	"fmt"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/absentee"
	"github.com/storacha/go-ucanto/ucan"
	vdm "github.com/storacha/go-ucanto/validator/datamodel"

	"github.com/egressd/egressd/capabilities"
)

// Grant is what lets an agent act for a did:mailto account, as Storacha's
// access/claim hands it out: the account's delegation to the agent (the
// account has no key, so it is unsigned) and the service's ucan/attest that
// vouches for it. Both travel as proofs of the agent's invocations.
type Grant struct {
	Delegation  delegation.Delegation
	Attestation delegation.Delegation
}

// Proofs are the grant's delegations, in the order they are attached.
func (g Grant) Proofs() []delegation.Delegation {
	return []delegation.Delegation{g.Delegation, g.Attestation}
}

// GrantAccount makes the grant of abilities (default account/egress/get) on
// account to agent, attested by service. A zero expiration never expires.
func GrantAccount(service principal.Signer, account did.DID, agent ucan.Principal, abilities []string, expiration time.Time) (Grant, error) {
	if len(abilities) == 0 {
		abilities = []string{capabilities.AccountEgressGet}
	}
	caps := make([]ucan.Capability[ucan.CaveatBuilder], len(abilities))
	for i, a := range abilities {
		caps[i] = ucan.NewCapability[ucan.CaveatBuilder](a, account.String(), ucan.NoCaveats{})
	}
	opts := []delegation.Option{delegation.WithNoExpiration()}
	if !expiration.IsZero() {
		opts = []delegation.Option{delegation.WithExpiration(int(expiration.Unix()))}
	}
	dlg, err := delegation.Delegate(absentee.From(account), agent, caps, opts...)
	if err != nil {
		return Grant{}, fmt.Errorf("delegating from %s: %w", account, err)
	}
	attest := []ucan.Capability[vdm.AttestationModel]{
		ucan.NewCapability("ucan/attest", service.DID().String(), vdm.AttestationModel{Proof: dlg.Link()}),
	}
	att, err := delegation.Delegate(service, agent, attest, opts...)
	if err != nil {
		return Grant{}, fmt.Errorf("attesting the delegation: %w", err)
	}
	return Grant{Delegation: dlg, Attestation: att}, nil
}

// EgressGet signs an account/egress/get invocation from agent to the
// service, carrying the grant's proofs.
func EgressGet(agent principal.Signer, service ucan.Principal, account did.DID, nb capabilities.EgressGetCaveats, proofs ...delegation.Delegation) (invocation.IssuedInvocation, error) {
	prfs := make([]delegation.Proof, len(proofs))
	for i, p := range proofs {
		prfs[i] = delegation.FromDelegation(p)
	}
	return capabilities.EgressGet.Invoke(agent, service, account.String(), nb, delegation.WithProof(prfs...), delegation.WithNoExpiration())
}
