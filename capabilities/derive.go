package capabilities

import (
	"fmt"

	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// A space can narrow what it delegates: usage/record with nb {bytes: 100}
// lets the gateway record 100-byte responses only, and nb {resource: <cid>}
// one resource only. A derives function cannot enforce that in go-ucanto
// v0.8.2: ResolveCapability re-reads the claimed capability's caveats in
// place of the delegation's ("TODO: inherit missing fields"), so derives is
// handed the claimed caveats twice and the delegation's own are lost. So the
// check runs where the delegation is still at hand: constrained wraps the
// parser, and its matches check each delegation a claim is derived from.
// Ability wildcards (usage/*, space/content/serve/*, *) and `with` are still
// resolved and derived by the validator (DefaultDerives); only the caveats
// are added here.

// constrained makes a capability parser refuse a claim whose caveats a
// delegation in its proof chain does not allow, as check decides.
func constrained[C any](p validator.CapabilityParser[C], check func(claimed C, delegated any) error) validator.CapabilityParser[C] {
	return constrainedParser[C]{p, check}
}

type constrainedParser[C any] struct {
	validator.CapabilityParser[C]
	check func(claimed C, delegated any) error
}

// Match parses an invocation's own capability; the matches it returns check
// the delegations they are derived from.
func (p constrainedParser[C]) Match(source validator.Source) (validator.Match[C], validator.InvalidCapability) {
	m, err := p.CapabilityParser.Match(source)
	if err != nil {
		return nil, err
	}
	return constrainedMatch[C]{m, p.check}, nil
}

// Select goes through Match above, not the wrapped parser's.
func (p constrainedParser[C]) Select(sources []validator.Source) ([]validator.Match[C], []validator.DelegationError, []ucan.Capability[any]) {
	return validator.Select(p, sources)
}

// String names the capability in Unauthorized messages.
func (p constrainedParser[C]) String() string { return fmt.Sprint(p.CapabilityParser) }

type constrainedMatch[C any] struct {
	validator.Match[C]
	check func(claimed C, delegated any) error
}

// Select finds the delegations the claim can be derived from, as the
// validator does, and drops those whose caveats the claim violates.
func (m constrainedMatch[C]) Select(sources []validator.Source) ([]validator.Match[C], []validator.DelegationError, []ucan.Capability[any]) {
	found, errs, unknowns := m.Match.Select(sources)
	var matches []validator.Match[C]
	for _, parent := range found {
		// Every match in a chain carries the invocation's caveats (the
		// validator copies them down), so each delegation is checked against
		// what is actually being claimed.
		if err := m.check(m.Value().Nb(), parent.Source()[0].Capability().Nb()); err != nil {
			escalated := validator.NewEscalatedCapabilityError(m.Value(), parent.Value(), err)
			errs = append(errs, validator.NewDelegationError([]validator.DelegationSubError{escalated}, m))
			continue
		}
		matches = append(matches, constrainedMatch[C]{parent, m.check})
	}
	return matches, errs, unknowns
}

// Prune keeps the wrapper, so the next link of the chain is checked too.
func (m constrainedMatch[C]) Prune(issuer validator.CanIssuer[C]) validator.Match[C] {
	if m.Match.Prune(issuer) == nil {
		return nil
	}
	return m
}

// String renders the claim in failure messages, as the wrapped match does.
func (m constrainedMatch[C]) String() string { return fmt.Sprint(m.Match) }

// checkDelegatedCaveats checks the claimed caveats against the nb of a
// delegation they are derived from. Each caveat the delegation states must be
// equal in the claim; one it leaves out, and any field it has that a record
// does not (space/content/serve/* carries authToken), constrain nothing.
//
// Equality for all three, bytes and servedAt included, because that is what
// @storacha/capabilities does wherever it enforces a caveat of this kind: its
// equal() (usage/report's period.from and period.to, numbers that could have
// been bounds) and checkLink() (links) treat a delegated caveat as a fixed
// value. Its "at most" rule (space/allocate, blob size) is for capacity
// grants, and a record is not one: a delegation stating bytes, resource and
// servedAt authorizes that one record. (Its own record definitions derive
// with equalWith alone and ignore caveats: the gap this closes.)
//
// A caveat of the wrong kind (bytes: "100", resource: 1, null) refuses the
// delegation, as the JavaScript validator does when the delegated nb fails
// the capability's schema.
func checkDelegatedCaveats(claimed RecordCaveats, delegated any) error {
	nb, ok := delegated.(datamodel.Node)
	if !ok || nb == nil || nb.Kind() != datamodel.Kind_Map {
		// No nb (a plain usage/* or *) or one that is not a map: nothing
		// here names a record field. The JavaScript validator, spreading
		// such an nb over the claim's, ignores it as well.
		return nil
	}
	if v := field(nb, "resource"); v != nil {
		link, err := v.AsLink()
		if err != nil {
			return fmt.Errorf("the delegated resource constraint is not a CID link")
		}
		if !sameLink(link, claimed.Resource) {
			return fmt.Errorf("resource %s is not the delegated resource %s", claimed.Resource, link)
		}
	}
	for _, c := range []struct {
		name    string
		claimed int64
	}{{"bytes", claimed.Bytes}, {"servedAt", claimed.ServedAt}} {
		v := field(nb, c.name)
		if v == nil {
			continue
		}
		want, err := v.AsInt()
		if err != nil {
			return fmt.Errorf("the delegated %s constraint is not an integer", c.name)
		}
		if c.claimed != want {
			return fmt.Errorf("%s %d is not the delegated %s %d", c.name, c.claimed, c.name, want)
		}
	}
	return nil
}

// field returns the value of key in the map nb, or nil when it is absent.
func field(nb datamodel.Node, key string) datamodel.Node {
	v, err := nb.LookupByString(key)
	if err != nil || v.IsAbsent() {
		return nil
	}
	return v
}

// sameLink reports whether a and b are the same CID.
func sameLink(a, b ipld.Link) bool {
	return a != nil && b != nil && a.Binary() == b.Binary()
}
