package account_test

import (
	"testing"
	"time"

	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	basicnode "github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// noSpaces is nb {spaces: []}: a delegation of account/egress/get for no space.
type noSpaces struct{}

func (noSpaces) ToIPLD() (datamodel.Node, error) {
	return qp.BuildMap(basicnode.Prototype.Any, 1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "spaces", qp.List(0, func(datamodel.ListAssembler) {}))
	})
}

// TestDelegatedEmptySpacesAllowNone: a delegation whose nb.spaces is
// the empty list allows no space (as @storacha/capabilities reads it: the
// claimed spaces must all be among the delegated ones). The caveats reader
// decodes [] as no list at all, so checkDelegatedEgressGet sees no
// restriction and the delegate reads every space of the account.
func TestDelegatedEmptySpacesAllowNone(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	s := newService(t, now)
	a1 := s.provision(alice)
	s.record(event(alice, a1, now, 99))
	holder := newKey(t)
	g := s.grant(alice, holder, time.Time{})
	helper := newKey(t)
	none, err := delegation.Delegate(holder, helper,
		[]ucan.Capability[ucan.CaveatBuilder]{ucan.NewCapability[ucan.CaveatBuilder](capabilities.AccountEgressGet, alice, noSpaces{})},
		delegation.WithNoExpiration(), delegation.WithProof(delegation.FromDelegation(g.Delegation), delegation.FromDelegation(g.Attestation)))
	if err != nil {
		t.Fatal(err)
	}
	r := s.get(helper, alice, capabilities.EgressGetCaveats{}, none)
	if name, _ := client.OutcomeFailure(r); name == "" {
		t.Fatalf("a delegation for no space read every space: %v", okJSON(t, r))
	}
	r = s.get(helper, alice, capabilities.EgressGetCaveats{Spaces: []string{a1}}, none)
	if name, _ := client.OutcomeFailure(r); name == "" {
		t.Fatalf("a delegation for no space read %s: %v", a1, okJSON(t, r))
	}
}
