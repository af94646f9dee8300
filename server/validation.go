package server

import (
	"context"
	"errors"
	"sync"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// newValidationContext assembles what the ucanto validator needs to check
// an invocation of parser's capability against this service. Every delegation the validator
// checks spends a step of budget; an exhausted budget fails every further
// check at once, which cuts the validator's search (factorial in the number
// of attestations otherwise) down to at most the budget's size.
func newValidationContext[C any](s *Server, parser validator.CapabilityParser[C], budget *validationBudget, resolveProof validator.ProofResolverFunc) validator.ValidationContext[C] {
	resolveProof = onlyOwnAttestations(s.cfg.Signer.DID(), resolveProof)
	return validator.NewValidationContext(
		s.cfg.Signer.Verifier(),
		parser,
		validator.IsSelfIssued,
		s.checkRevoked,
		resolveProof,
		s.signatures.parsePrincipal,
		func(ctx context.Context, d did.DID) (did.DID, validator.UnresolvedDID) {
			if !budget.spend() {
				return did.Undef, validator.NewDIDKeyResolutionError(d, errValidationBudget)
			}
			return s.cfg.Principals.ResolveDIDKey(ctx, d)
		},
		func(dlg delegation.Delegation) validator.InvalidProof {
			if !budget.spend() {
				return validator.NewSessionEscalationError(dlg, errValidationBudget)
			}
			return validator.NotExpiredNotTooEarly(dlg)
		},
	)
}

var errValidationBudget = errors.New("validation step budget exhausted")

// validationBudget counts the delegation checks left for one invocation.
type validationBudget struct {
	mu    sync.Mutex
	left  int
	spent bool
}

func (b *validationBudget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 {
		b.spent = true
		return false
	}
	b.left--
	return true
}

func (b *validationBudget) exhausted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// onlyOwnAttestations refuses a ucan/attest that this service did not issue
// itself. go-ucanto v0.8.2 derives an attestation from a delegated one
// without comparing nb.proof (ResolveCapability reads nb from the claim), so
// an agent holding any attestation of this service could attest a
// delegation of its own making, from any did:mailto account. egressd never
// delegates ucan/attest: the only attestations it honours are its own.
func onlyOwnAttestations(service did.DID, resolve validator.ProofResolverFunc) validator.ProofResolverFunc {
	return func(ctx context.Context, link ucan.Link) (delegation.Delegation, validator.UnavailableProof) {
		dlg, err := resolve(ctx, link)
		if err != nil {
			return dlg, err
		}
		if dlg.Issuer().DID() != service {
			for _, c := range dlg.Capabilities() {
				if c.Can() == "ucan/attest" || c.Can() == "ucan/*" || c.Can() == "*" {
					if c.With() == service.String() {
						return nil, validator.NewUnavailableProofError(link, errDelegatedAttestation)
					}
				}
			}
		}
		return dlg, nil
	}
}

var errDelegatedAttestation = errors.New("a ucan/attest is accepted only when this service issued it")
