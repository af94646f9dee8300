package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/revocations"
)

// Revocations is what the server needs of a revocation store: to record a
// revocation, and to look up a whole delegation chain in one call.
type Revocations = revocations.Store

// Who may revoke a delegation, here as in w3up: the issuer of the delegation
// or of any delegation above it in its chain, the audience of any of them
// (the holder giving it up), and the space the delegation is about (the
// did:key `with` of its capability). ucan/revoke refuses anybody else, and
// the validator applies a recorded revocation only to a chain in which its
// revoker is one of these, so a row written into a shared table by another
// service, which may not have checked, cannot revoke more than it should.
//
// A delegation is revoked under its CID. The message decoder (wire.Read,
// readInvocation) makes that CID an identity: every block hashes to its CID
// and is in the one canonical encoding of its content, with one exception
// that shares a signature: a UCAN without proofs may be written with
// "prf": [] (JS ucanto) or without "prf" (go-ucanto). Both are looked up, so
// a holder cannot slip past a revocation by sending the other one.
//
// The server keeps no cache: every check asks the store. The embedded store
// is one SQLite file, so a revocation applies to the next invocation. In
// front of DynamoDB, cmd/egressd puts a revocations.Cached, which forgets a
// delegation as soon as it is revoked through it: the replica that took the
// revocation applies it to its next invocation, the other replicas within
// the cache's TTL.

// checkRevoked is the validator's revocation check. The validator calls it
// once for each chain it would accept, with the whole chain: every
// delegation of it is looked up in one store call.
func (s *Server) checkRevoked(ctx context.Context, auth validator.Authorization[any]) validator.Revoked {
	if s.cfg.Revocations == nil {
		return nil
	}
	var chain []*chainLink
	collectChain(auth, &chain, s.didNames.name)
	var ids []string
	for _, l := range chain {
		// A UCAN addressed to this service is the invocation being checked
		// (egressd delegates to nobody, so none sits further up a chain):
		// revoking it would mean nothing, and looking up a CID never seen
		// before would defeat a cache in front of the store.
		if slices.Contains(s.audiences, s.didNames.name(l.dlg.Audience().DID())) {
			continue
		}
		var err error
		if l.ids, err = s.revocationIDs(l.dlg); err != nil {
			return revocationsUnavailable{validator.NewRevokedError(l.dlg).(validator.RevokedError), err}
		}
		ids = append(ids, l.ids...)
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := s.cfg.Revocations.Revocations(ctx, ids)
	if err != nil {
		return revocationsUnavailable{validator.NewRevokedError(auth.Delegation()).(validator.RevokedError), err}
	}
	for _, r := range found {
		for _, l := range chain {
			if slices.Contains(l.ids, r.Delegation) && l.authority[r.Scope] {
				return validator.NewRevokedError(l.dlg)
			}
		}
	}
	return nil
}

// chainLink is one delegation of a chain: the CIDs it may be revoked under
// and the principals whose revocation of it applies.
type chainLink struct {
	dlg       delegation.Delegation
	ids       []string
	authority map[string]bool
}

// collectChain appends a and the delegations above it (its proofs) to out,
// and returns the principals with authority over a's delegation, as name
// writes them.
func collectChain(a validator.Authorization[any], out *[]*chainLink, name func(did.DID) string) map[string]bool {
	authority := map[string]bool{}
	for _, p := range a.Proofs() {
		for did := range collectChain(p, out, name) {
			authority[did] = true
		}
	}
	dlg := a.Delegation()
	authority[name(dlg.Issuer().DID())] = true
	authority[name(dlg.Audience().DID())] = true
	if with := a.Capability().With(); strings.HasPrefix(with, "did:key:") {
		authority[with] = true
	}
	*out = append(*out, &chainLink{dlg: dlg, authority: authority})
	return authority
}

// revocationIDs are the CIDs dlg may have been revoked under: its own, and
// for a UCAN without proofs, that of its other encoding. The other encoding
// is a function of the block, so it is remembered: a gateway's delegation
// from its space (which has no proofs) sits under every one of its records.
func (s *Server) revocationIDs(dlg delegation.Delegation) ([]string, error) {
	id := dlg.Link().String()
	if len(dlg.Proofs()) != 0 {
		return []string{id}, nil
	}
	if twin, ok := s.twins.Get(id); ok {
		return []string{id, twin}, nil
	}
	// It cannot fail on a block the validator has decoded; if it did,
	// not knowing would not mean "not revoked".
	twin, _, err := proofsTwin(dlg.Root().Bytes())
	if err != nil {
		return nil, fmt.Errorf("re-encoding %s: %w", dlg.Link(), err)
	}
	s.twins.Add(id, twin.String())
	return []string{id, twin.String()}, nil
}

// revocationsUnavailable is the check's answer when the store could not be
// asked. The validator only takes a Revoked, so it is one, but named
// otherwise: refuse turns it into a 503, for the gateway to retry, rather
// than a receipt telling it the delegation was revoked.
type revocationsUnavailable struct {
	validator.RevokedError
	err error
}

func (e revocationsUnavailable) Name() string { return "RevocationCheckFailed" }

func (e revocationsUnavailable) Error() string {
	return "the revocations of this delegation chain could not be looked up; retry later"
}

func (e revocationsUnavailable) Unwrap() error { return e.err }

// refusal answers an invocation the validator did not authorize: a failure
// naming the reason (Revoked when its chain holds a revoked delegation), or,
// when the revocations could not be looked up, an internal error, so the
// message fails with 503 and the gateway retries.
func refusal(err validator.Unauthorized) (Result, error) {
	for _, p := range err.InvalidProofs() {
		var unavailable revocationsUnavailable
		if errors.As(p, &unavailable) {
			return Result{}, fmt.Errorf("checking revocations: %w", unavailable.err)
		}
	}
	return Fail(capabilities.AccessFailure(err)), nil
}

// revokeCapability serves ucan/revoke with svc. TrustedIssuers do not apply:
// they name the gateways that may record, and the spaces that revoke their
// delegations are not gateways.
func revokeCapability(svc *RevokeService) *Definition[capabilities.RevokeCaveats] {
	return &Definition[capabilities.RevokeCaveats]{
		Parsers:     []validator.CapabilityParser[capabilities.RevokeCaveats]{capabilities.Revoke},
		ReadCaveats: capabilities.ReadRevokeCaveats,
		Handler:     svc,
	}
}

// RevokeService answers ucan/revoke. The server has checked before that the
// invoker may act as `with` (it is, or holds a ucan/revoke delegation from
// it); here the delegation to revoke must be among the invocation's blocks
// (a JS client attaches it as a proof), and the revoker must have authority
// over it.
type RevokeService struct {
	Revocations Revocations
	Logger      *slog.Logger
	Now         func() time.Time
}

// Handle records the revocation and answers RevokeOK.
func (r *RevokeService) Handle(ctx context.Context, req Request[capabilities.RevokeCaveats]) (Result, error) {
	inv := req.Invocation
	revoker := req.Capability.With()
	nb := req.Capability.Nb()

	blocks, err := sentBlocks(inv)
	if err != nil {
		return Result{}, err
	}
	target, ok := sentDelegation(blocks, nb.Ucan)
	if !ok {
		return Fail(capabilities.UCANNotFound(nb.Ucan, "nb.ucan")), nil
	}
	for i, p := range nb.Proof {
		if _, ok := sentDelegation(blocks, p); !ok {
			return Fail(capabilities.UCANNotFound(p, fmt.Sprintf("nb.proof[%d]", i))), nil
		}
	}
	if !revocationAuthority(target, blocks)[revoker] {
		return Fail(capabilities.UnauthorizedRevocation(revoker, nb.Ucan)), nil
	}

	rev := revocations.Revocation{Delegation: nb.Ucan.String(), Scope: revoker, Cause: inv.Link().String()}
	if err := r.Revocations.Revoke(ctx, rev); err != nil {
		return Result{}, err
	}
	r.Logger.Info("delegation revoked", "delegation", nb.Ucan, "revoker", revoker, "cause", inv.Link())
	return OK(capabilities.RevokeOK{Time: r.Now().UnixMilli()}), nil
}

// sentBlocks gathers the blocks sent with inv: itself and the proofs under
// it (all that the message decoder kept for it, bounded by its limits).
func sentBlocks(inv invocation.Invocation) (blockstore.BlockStore, error) {
	bs, err := blockstore.NewBlockStore()
	if err != nil {
		return nil, err
	}
	for blk, err := range inv.Blocks() {
		if err != nil {
			// A proof that is no delegation: what came before is all there is.
			break
		}
		if err := bs.Put(blk); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// sentDelegation reads the delegation at link from the sent blocks. The
// message decoder checked that every block hashes to its CID, so a revoker
// cannot put a made-up delegation, naming itself as issuer, under a real
// one's CID.
func sentDelegation(blocks blockstore.BlockReader, link ipld.Link) (delegation.Delegation, bool) {
	blk, ok, err := blocks.Get(link)
	if err != nil || !ok {
		return nil, false
	}
	dlg, err := delegation.NewDelegation(blk, blocks)
	if err != nil {
		return nil, false
	}
	return dlg, true
}

// revocationAuthority is who may revoke target: the issuers and audiences
// of target and of the delegations above it that were sent, and the
// did:key spaces its capabilities are about.
func revocationAuthority(target delegation.Delegation, blocks blockstore.BlockReader) map[string]bool {
	authority := map[string]bool{}
	for _, c := range target.Capabilities() {
		if strings.HasPrefix(c.With(), "did:key:") {
			authority[c.With()] = true
		}
	}
	seen := map[string]bool{}
	stack := []delegation.Delegation{target}
	for len(stack) > 0 {
		dlg := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		authority[dlg.Issuer().DID().String()] = true
		authority[dlg.Audience().DID().String()] = true
		for _, p := range dlg.Proofs() {
			if seen[p.String()] {
				continue
			}
			seen[p.String()] = true
			if proof, ok := sentDelegation(blocks, p); ok {
				stack = append(stack, proof)
			}
		}
	}
	return authority
}
