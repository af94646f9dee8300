// Package capabilities defines what can be invoked on egressd: for each
// capability (the egress record under its two names, ucan/revoke) its
// caveats, parser, success value and named failures, with the IPLD schemas
// they are encoded with. The server package serves them.
package capabilities

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/schema"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/result/failure"
	ucschema "github.com/storacha/go-ucanto/core/schema"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/validator"
)

// The two names the record capability is served under.
const (
	// UsageRecord is the name the original JavaScript service used; servedAt in seconds.
	UsageRecord = "usage/record"
	// EgressRecord is Storacha's current name; servedAt in milliseconds.
	EgressRecord = "space/content/serve/egress/record"
)

//go:embed record.ipldsch
var recordSchema []byte

// The types are loaded in variable initialisers, not init(), because the
// capability parsers below are package variables that need them.
var (
	recordTypes = loadRecordTypes()
	caveatsType = recordTypes.TypeByName("RecordCaveats")
	okType      = recordTypes.TypeByName("RecordOK")
	failureType = recordTypes.TypeByName("Failure")
)

func loadRecordTypes() *schema.TypeSystem {
	ts, err := ipldprime.LoadSchemaBytes(recordSchema)
	if err != nil {
		// The schema is compiled into the binary: failing here is a build defect.
		panic(fmt.Errorf("loading record schema: %w", err))
	}
	return ts
}

// Schema returns the IPLD schema text of the caveats, success value and failure.
func Schema() []byte { return recordSchema }

// RecordCaveats are the caveats (nb) of a record invocation.
type RecordCaveats struct {
	// The JSON names matter: the validator renders capabilities as JSON in
	// its failure messages, and callers know the caveats by these names.
	Resource ipld.Link `json:"resource"`
	Bytes    int64     `json:"bytes"`
	ServedAt int64     `json:"servedAt"`
}

// ToIPLD encodes the caveats, so a client can invoke with them.
func (c RecordCaveats) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&c, caveatsType)
}

// secondsBelow separates the two units clients send servedAt in: 1e11 seconds
// is the year 5138, 1e11 milliseconds is March 1973.
const secondsBelow = 100_000_000_000

// ServedTime normalises servedAt to a time: a value below 1e11 is seconds,
// otherwise milliseconds.
func (c RecordCaveats) ServedTime() time.Time {
	if c.ServedAt < secondsBelow {
		return time.Unix(c.ServedAt, 0).UTC()
	}
	return time.UnixMilli(c.ServedAt).UTC()
}

// checkCaveats rejects caveats the schema alone lets through.
func checkCaveats(c RecordCaveats) (RecordCaveats, failure.Failure) {
	if c.Resource == nil {
		return c, ucschema.NewSchemaError("resource: expected a CID link")
	}
	if c.Bytes <= 0 {
		return c, ucschema.NewSchemaError(fmt.Sprintf("bytes: expected an integer greater than 0, got %d", c.Bytes))
	}
	if c.ServedAt < 0 {
		return c, ucschema.NewSchemaError(fmt.Sprintf("servedAt: expected an integer of at least 0, got %d", c.ServedAt))
	}
	return c, nil
}

var caveatsReader = ucschema.Mapped(ucschema.Struct[RecordCaveats](caveatsType, nil), checkCaveats)

// ReadCaveats parses and checks caveats as they arrive in an invocation.
func ReadCaveats(nb any) (RecordCaveats, error) {
	c, f := caveatsReader.Read(nb)
	if f == nil {
		return c, nil
	}
	// checkCaveats names the field; the IPLD binder's own wording ("AssignFloat
	// called on a Int node") would only puzzle a gateway operator.
	for _, field := range []string{"resource: ", "bytes: ", "servedAt: "} {
		if strings.HasPrefix(f.Error(), field) {
			return c, f
		}
	}
	return c, errors.New("caveats must be {resource: CID link, bytes: integer > 0, servedAt: integer >= 0}")
}

// spaceDID accepts only did:key resources: a space is always a key.
var spaceDID = ucschema.DIDString(ucschema.WithMethod("key"))

// Record is the usage/record capability. DefaultDerives checks `with`;
// constrained adds the caveats a delegation fixes (derive.go).
var Record = constrained(validator.NewCapability(UsageRecord, spaceDID, caveatsReader, validator.DefaultDerives[RecordCaveats]), checkDelegatedCaveats)

// EgressRecordCapability is the space/content/serve/egress/record capability,
// derived the same way.
var EgressRecordCapability = constrained(validator.NewCapability(EgressRecord, spaceDID, caveatsReader, validator.DefaultDerives[RecordCaveats]), checkDelegatedCaveats)

// RecordParsers are the record capability's parsers by name, for a client
// to invoke either. The server serves them through its own registration.
var RecordParsers = map[string]validator.CapabilityParser[RecordCaveats]{
	UsageRecord:  Record,
	EgressRecord: EgressRecordCapability,
}

// RecordOK is the success value of a record invocation.
type RecordOK struct {
	Space    string
	Resource ipld.Link
	Bytes    int64
	ServedAt string
	Cause    ipld.Link
}

// ToIPLD encodes the success value into a receipt.
func (o RecordOK) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&o, okType)
}

// NewRecordOK builds the success value for an egress record.
func NewRecordOK(space string, c RecordCaveats, cause ipld.Link) RecordOK {
	return RecordOK{
		Space:    space,
		Resource: c.Resource,
		Bytes:    c.Bytes,
		ServedAt: c.ServedTime().Format("2006-01-02T15:04:05.000Z"),
		Cause:    cause,
	}
}

var _ ucan.CaveatBuilder = RecordCaveats{}
