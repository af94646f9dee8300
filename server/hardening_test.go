package server_test

import (
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
)

func TestTrustedIssuers(t *testing.T) {
	trustedKey := newKey(t)
	trusted := wrap(t, trustedKey, "did:web:gw.example")
	h := newHarness(t, func(c *server.Config) {
		c.TrustedIssuers = []did.DID{trusted.DID()}
		c.Principals = server.NewPrincipalResolver(map[did.DID]did.DID{trusted.DID(): trustedKey.DID()}, nil)
	})
	space := h.provision(alice)
	unknownAgent := newKey(t)

	ok := recordFrom(t, trusted, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(),
		delegate(t, space, trusted.DID(), []string{"space/content/serve/*"}, time.Time{}))
	mustOK(t, h.ucantoExecute(ok)[0])

	// A valid delegation from the space is not enough for an unknown agent,
	// and the space itself is not a trusted gateway either.
	viaAgent := recordFrom(t, unknownAgent, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(),
		delegate(t, space, unknownAgent.DID(), []string{"space/content/serve/*"}, time.Time{}))
	mustFail(t, h.ucantoExecute(viaAgent)[0], "UntrustedIssuer")
	bySpace := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now())
	mustFail(t, h.ucantoExecute(bySpace)[0], "UntrustedIssuer")
	if h.depth() != 1 {
		t.Fatalf("queue depth %d, want 1", h.depth())
	}
}

// chain builds space -> a1 -> a2 -> ... -> an delegations and returns the
// last agent and the proof it holds.
func chain(t *testing.T, space principal.Signer, n int) (principal.Signer, delegation.Delegation) {
	t.Helper()
	holder := space
	var proof delegation.Delegation
	for range n {
		next := newKey(t)
		opts := []delegation.Option{delegation.WithNoExpiration()}
		if proof != nil {
			opts = append(opts, delegation.WithProof(delegation.FromDelegation(proof)))
		}
		dlg, err := delegation.Delegate(holder, next, []ucan.Capability[ucan.CaveatBuilder]{newCapability("space/content/serve/*", space.DID().String())}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		holder, proof = next, dlg
	}
	return holder, proof
}

func TestProofLimits(t *testing.T) {
	h := newHarness(t, func(c *server.Config) {
		c.MaxDelegationDepth = 3
		c.MaxProofs = 4
	})
	space := h.provision(alice)

	agent, proof := chain(t, space, 3)
	mustOK(t, h.ucantoExecute(recordFrom(t, agent, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), proof))[0])

	agent, proof = chain(t, space, 4)
	mustFail(t, h.ucantoExecute(recordFrom(t, agent, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), proof))[0], "ProofLimitExceeded")

	gateway := newKey(t)
	var many []delegation.Delegation
	for range 5 {
		many = append(many, delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{}))
	}
	inv, err := client.Invoke(gateway, h.service.DID(), client.Record{Space: space.DID(), Resource: resourceLink(t, "x"), Bytes: 1, ServedAt: time.Now()}, many...)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(inv)[0], "ProofLimitExceeded")
	if h.depth() != 1 {
		t.Fatalf("queue depth %d, want 1", h.depth())
	}
}
