package capabilities

import (
	"errors"
	"fmt"
	"slices"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/schema"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/result/failure"
	ucschema "github.com/storacha/go-ucanto/core/schema"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// ucan/revoke as w3up defines it (@storacha/capabilities UCAN.revoke): `with`
// is the DID of the principal revoking, nb.ucan the delegation it revokes and
// nb.proof, optionally, the delegations linking it to that principal. Both
// caveats are optional in the schema because a delegation of ucan/revoke may
// leave them open; an invocation must name nb.ucan (ReadRevokeCaveats).
const revokeSchema = `
type RevokeCaveats struct {
  ucan optional Link
  proof optional [Link]
}

type RevokeOK struct {
  time Int
}
`

var (
	revokeTypes       = loadRevokeTypes()
	revokeCaveatsType = revokeTypes.TypeByName("RevokeCaveats")
	revokeOKType      = revokeTypes.TypeByName("RevokeOK")
)

func loadRevokeTypes() *schema.TypeSystem {
	ts, err := ipldprime.LoadSchemaBytes([]byte(revokeSchema))
	if err != nil {
		// The schema is compiled into the binary: failing here is a build defect.
		panic(fmt.Errorf("loading revoke schema: %w", err))
	}
	return ts
}

// RevokeCaveats are the caveats (nb) of ucan/revoke.
type RevokeCaveats struct {
	// UCAN is the link of the delegation to revoke.
	Ucan ipld.Link `json:"ucan,omitempty"`
	// Proof are the links of delegations between the revoked one and the
	// revoker; egressd reads the revoked delegation's own proofs instead,
	// but like w3up it insists that the ones named were sent.
	Proof []ipld.Link `json:"proof,omitempty"`
}

// ToIPLD encodes the caveats, so a client can invoke with them.
func (c RevokeCaveats) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&c, revokeCaveatsType)
}

var _ ucan.CaveatBuilder = RevokeCaveats{}

var revokeCaveatsReader = ucschema.Struct[RevokeCaveats](revokeCaveatsType, nil)

// ReadRevokeCaveats parses the caveats of a ucan/revoke invocation, which
// must name the delegation it revokes.
func ReadRevokeCaveats(nb any) (RevokeCaveats, error) {
	c, f := revokeCaveatsReader.Read(nb)
	if f != nil {
		return c, errors.New("caveats must be {ucan: CID link, proof?: [CID link]}")
	}
	if c.Ucan == nil {
		return c, errors.New("ucan: expected the CID link of the delegation to revoke")
	}
	return c, nil
}

// Revoke is the ucan/revoke capability. It derives as in w3up: the same
// principal, the same delegation when the delegated one names one, and the
// same proof list. As for the record capabilities (derive.go), go-ucanto
// hands derives the claimed caveats in place of the delegated ones, so the
// caveats are compared by checkDelegatedRevoke, where the delegation is at hand.
var Revoke = constrained(validator.NewCapability(UcanRevoke, ucschema.DIDString(), revokeCaveatsReader, deriveRevoke), checkDelegatedRevoke)

// deriveRevoke checks claimed against delegated: `with` here (equal, as
// w3up's equalWith), the caveats in checkDelegatedRevoke.
func deriveRevoke(claimed, delegated ucan.Capability[RevokeCaveats]) failure.Failure {
	if claimed.With() != delegated.With() {
		return ucschema.NewSchemaError(fmt.Sprintf("can only revoke as %s, not as %s", delegated.With(), claimed.With()))
	}
	return nil
}

// checkDelegatedRevoke checks the claimed caveats against a delegation's:
// the delegation it names, if any, and its proof list.
func checkDelegatedRevoke(claimed RevokeCaveats, delegated any) error {
	if n, ok := delegated.(datamodel.Node); !ok || n == nil || n.Kind() != datamodel.Kind_Map {
		// No nb, as the JavaScript client delegates ucan/revoke when it
		// names no delegation: nothing is constrained.
		return nil
	}
	nb, err := revokeCaveatsReader.Read(delegated)
	if err != nil {
		return errors.New("the delegated caveats are not those of ucan/revoke")
	}
	if nb.Ucan != nil && (claimed.Ucan == nil || claimed.Ucan.String() != nb.Ucan.String()) {
		return fmt.Errorf("nb.ucan: the delegation only allows revoking %s", nb.Ucan)
	}
	if !slices.Equal(linkStrings(claimed.Proof), linkStrings(nb.Proof)) {
		return errors.New("nb.proof: must be the delegated proof list")
	}
	return nil
}

func linkStrings(links []ipld.Link) []string {
	s := make([]string, len(links))
	for i, l := range links {
		s[i] = l.String()
	}
	return s
}

// RevokeOK is the success value of ucan/revoke, w3up's {time}: when the
// revocation was recorded, in Unix milliseconds (w3up answers Date.now()).
type RevokeOK struct {
	Time int64
}

// ToIPLD encodes the success value into a receipt.
func (o RevokeOK) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&o, revokeOKType)
}

// Names of the ucan/revoke failures, as w3up names them, and of ucanto's
// failure for a chain holding a revoked delegation.
const (
	UCANNotFoundName           = "UCANNotFound"
	UnauthorizedRevocationName = "UnauthorizedRevocation"
	RevokedName                = "Revoked"
)

// UCANNotFound is returned when a delegation the revocation names is not
// among the blocks of the invocation (a JS client sends it as a proof).
func UCANNotFound(link ipld.Link, role string) Failure {
	return Failure{UCANNotFoundName, fmt.Sprintf(
		"the %s UCAN %s is not found: it must be included with the revocation (as a proof of the invocation)", role, link)}
}

// UnauthorizedRevocation is returned when the revoker has no authority over
// the delegation.
func UnauthorizedRevocation(revoker string, link ipld.Link) Failure {
	return Failure{UnauthorizedRevocationName, fmt.Sprintf(
		"%s cannot revoke %s: only the issuer or audience of that delegation or of one above it in its chain (send those as proofs too), or the space it is about, can",
		revoker, link)}
}

// AccessFailure is FromError for the validator's answer to an invocation:
// a chain that failed because a delegation in it was revoked is named
// Revoked, the validator's own name for that reason, instead of the
// Unauthorized that wraps it.
func AccessFailure(err error) Failure {
	var unauthorized validator.Unauthorized
	if errors.As(err, &unauthorized) {
		for _, p := range unauthorized.InvalidProofs() {
			var revoked validator.Revoked
			if errors.As(p, &revoked) && revoked.Name() == RevokedName {
				return Failure{RevokedName, revoked.Error()}
			}
		}
	}
	return FromError(err)
}
