package capabilities

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/schema"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/result/failure"
	ucschema "github.com/storacha/go-ucanto/core/schema"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// account/egress/get as @storacha/capabilities 2.3.1 defines it
// (account/egress.js): `with` is the customer's did:mailto account, nb.spaces
// optionally names the spaces to report, nb.period optionally bounds the
// days, from inclusive and to exclusive, as date-only ISO 8601 strings.
const (
	AccountEgressGet = "account/egress/get"
	// AccountEgressAll is the ability an account delegates to let an agent
	// invoke every account/egress/ capability.
	AccountEgressAll = "account/egress/*"
)

const accountEgressSchema = `
type EgressGetCaveats struct {
  spaces optional [String]
  period optional EgressPeriod
}

type EgressPeriod struct {
  from String
  to String
}

type EgressGetOK struct {
  total Int
  spaces {String:SpaceEgress}
}

type SpaceEgress struct {
  total Int
  dailyStats [DailyStats]
}

type DailyStats struct {
  date String
  egress Int
}
`

var (
	accountEgressTypes       = loadAccountEgressTypes()
	accountEgressCaveatsType = accountEgressTypes.TypeByName("EgressGetCaveats")
	accountEgressOKType      = accountEgressTypes.TypeByName("EgressGetOK")
)

func loadAccountEgressTypes() *schema.TypeSystem {
	ts, err := ipldprime.LoadSchemaBytes([]byte(accountEgressSchema))
	if err != nil {
		// The schema is compiled into the binary: failing here is a build defect.
		panic(fmt.Errorf("loading account/egress schema: %w", err))
	}
	return ts
}

// EgressGetCaveats are the caveats (nb) of account/egress/get.
type EgressGetCaveats struct {
	Spaces []string      `json:"spaces,omitempty"`
	Period *EgressPeriod `json:"period,omitempty"`
}

// EgressPeriod is a range of UTC days: From inclusive, To exclusive,
// "2006-01-02" each.
type EgressPeriod struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ToIPLD encodes the caveats, so a client can invoke with them.
func (c EgressGetCaveats) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&c, accountEgressCaveatsType)
}

var _ ucan.CaveatBuilder = EgressGetCaveats{}

var accountEgressCaveatsReader ucschema.Reader[any, EgressGetCaveats] = optionalCaveats{ucschema.Struct[EgressGetCaveats](accountEgressCaveatsType, nil)}

// optionalCaveats reads a missing nb as no caveats: both caveats are
// optional, and the JavaScript client leaves nb out when it names neither.
type optionalCaveats struct {
	ucschema.Reader[any, EgressGetCaveats]
}

func (r optionalCaveats) Read(nb any) (EgressGetCaveats, failure.Failure) {
	if nb == nil {
		return EgressGetCaveats{}, nil
	}
	if n, ok := nb.(datamodel.Node); ok && (n.IsAbsent() || n.IsNull()) {
		return EgressGetCaveats{}, nil
	}
	return r.Reader.Read(nb)
}

// maxEgressSpaces bounds nb.spaces: each listed space costs a lookup.
const maxEgressSpaces = 1000

// ReadEgressGetCaveats parses the caveats of an account/egress/get
// invocation: every listed space a did:key, at most maxEgressSpaces of them.
// The period's dates are checked by the handler, which names a bad one
// PeriodNotAcceptable as Storacha does.
func ReadEgressGetCaveats(nb any) (EgressGetCaveats, error) {
	c, f := accountEgressCaveatsReader.Read(nb)
	if f != nil {
		return c, errors.New("caveats must be {spaces?: [did:key...], period?: {from: YYYY-MM-DD, to: YYYY-MM-DD}}")
	}
	if len(c.Spaces) > maxEgressSpaces {
		return c, fmt.Errorf("spaces: at most %d spaces per request, not %d", maxEgressSpaces, len(c.Spaces))
	}
	for _, s := range c.Spaces {
		if !strings.HasPrefix(s, "did:key:") {
			return c, fmt.Errorf("spaces: %q is not a space DID (did:key:...)", s)
		}
	}
	return c, nil
}

// accountDID reads `with`: a did:mailto account, as @storacha/capabilities'
// AccountDID.
var accountDID = ucschema.DIDString(ucschema.WithMethod("mailto"))

// EgressGet is the account/egress/get capability. `with` derives by
// equality (and from account/egress/* or *, which the validator resolves);
// the caveats a delegation states are checked by checkDelegatedEgressGet,
// where the delegation is at hand (see derive.go).
var EgressGet = constrained(validator.NewCapability(AccountEgressGet, accountDID, accountEgressCaveatsReader, validator.DefaultDerives[EgressGetCaveats]), checkDelegatedEgressGet)

// checkDelegatedEgressGet applies a delegation's caveats as
// @storacha/capabilities does: delegated spaces bound the claimed ones (a
// claim for all spaces exceeds any list), a delegated period is fixed.
func checkDelegatedEgressGet(claimed EgressGetCaveats, delegated any) error {
	nb, ok := delegated.(datamodel.Node)
	if !ok || nb == nil || nb.Kind() != datamodel.Kind_Map {
		return nil
	}
	parent, err := accountEgressCaveatsReader.Read(delegated)
	if err != nil {
		return errors.New("the delegated caveats are not those of account/egress/get")
	}
	// A stated list, the empty one included, bounds the claim: the reader
	// decodes [] as no list, so presence is read from the node itself.
	if parent.Spaces != nil || field(nb, "spaces") != nil {
		if claimed.Spaces == nil {
			return fmt.Errorf("spaces: the delegation allows only %v, and all spaces were asked for", parent.Spaces)
		}
		for _, s := range claimed.Spaces {
			if !slices.Contains(parent.Spaces, s) {
				return fmt.Errorf("spaces: %s is not among the delegated spaces", s)
			}
		}
	}
	if parent.Period != nil && (claimed.Period == nil || *claimed.Period != *parent.Period) {
		return fmt.Errorf("period: the delegation allows only %s to %s", parent.Period.From, parent.Period.To)
	}
	return nil
}

// EgressGetOK is the success value: bytes served per space and UTC day.
type EgressGetOK struct {
	Total  int64
	Spaces SpaceEgressMap
}

// SpaceEgressMap is {space: SpaceEgress}, in Keys order.
type SpaceEgressMap struct {
	Keys   []string
	Values map[string]SpaceEgress
}

// SpaceEgress is one space's total and its days with egress, oldest first.
type SpaceEgress struct {
	Total      int64
	DailyStats []DailyStats
}

// DailyStats is one UTC day's egress in bytes.
type DailyStats struct {
	Date   string
	Egress int64
}

// ToIPLD encodes the success value into a receipt.
func (o EgressGetOK) ToIPLD() (ipld.Node, error) {
	if o.Spaces.Values == nil {
		o.Spaces.Values = map[string]SpaceEgress{}
	}
	return ipld.WrapWithRecovery(&o, accountEgressOKType)
}

// Names of the account/egress/get failures, as @storacha/capabilities names them.
const (
	AccountNotFoundName     = "AccountNotFound"
	SpaceUnauthorizedName   = "SpaceUnauthorized"
	PeriodNotAcceptableName = "PeriodNotAcceptable"
)

// AccountNotFound: egressd knows no customer by that account.
func AccountNotFound(account string) Failure {
	return Failure{AccountNotFoundName, fmt.Sprintf("no customer %s", account)}
}

// SpaceUnauthorized: a listed space the account does not pay for.
func SpaceUnauthorized(account, space string) Failure {
	return Failure{SpaceUnauthorizedName, fmt.Sprintf("%s does not pay for space %s", account, space)}
}

// PeriodNotAcceptable: dates that are not days, from not before to, or a
// period longer than MaxEgressPeriodDays.
func PeriodNotAcceptable(reason string) Failure {
	return Failure{PeriodNotAcceptableName, reason}
}

// MaxEgressPeriodDays bounds one account/egress/get: a year and a day, so a
// whole year answers in one call, each space's days one range read.
const MaxEgressPeriodDays = 366

// DayLayout is how egress days are written.
const DayLayout = time.DateOnly
