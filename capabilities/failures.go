package capabilities

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/result/failure"
)

// Failure is every failure egressd puts in a receipt: a name and a message,
// the JavaScript ucanto convention, and never a Go stack or a file path.
type Failure struct {
	FailureName string
	Message     string
}

// Error returns the message.
func (f Failure) Error() string { return f.Message }

// Name returns the failure's name, for example "ConsumerNotFound".
func (f Failure) Name() string { return f.FailureName }

// ToIPLD encodes the failure as {name, message}.
func (f Failure) ToIPLD() (ipld.Node, error) {
	m := struct {
		Name    string
		Message string
	}{f.FailureName, f.Message}
	return ipld.WrapWithRecovery(&m, failureType)
}

var _ failure.IPLDBuilderFailure = Failure{}

// Names of egressd's own failures. Validation failures keep ucanto's names
// (Unauthorized, InvalidAudience, ...).
const (
	ConsumerNotFoundName   = "ConsumerNotFound"
	ServedAtOutOfRangeName = "ServedAtOutOfRange"
)

// ConsumerNotFound is returned when the space has no consumer record under
// this service (or its aliases), so nobody would pay for the egress.
func ConsumerNotFound(space string) Failure {
	return Failure{ConsumerNotFoundName, fmt.Sprintf("space %s is not provisioned with this service: no customer to bill", space)}
}

// ServedAtOutOfRange is returned when servedAt is too far in the future or
// older than the payment provider accepts.
func ServedAtOutOfRange(servedAt, now time.Time, maxAge, maxAhead time.Duration) Failure {
	return Failure{ServedAtOutOfRangeName, fmt.Sprintf(
		"servedAt %s is outside the accepted range %s to %s (at most %s old, %s ahead)",
		servedAt.Format(time.RFC3339), now.Add(-maxAge).Format(time.RFC3339), now.Add(maxAhead).Format(time.RFC3339), maxAge, maxAhead)}
}

// FromError converts any error into a Failure, keeping its name when it has
// one and its message, and dropping any stack trace it carries.
func FromError(err error) Failure {
	var f Failure
	if errors.As(err, &f) {
		return f
	}
	name := "Error"
	if named, ok := err.(failure.Named); ok && named.Name() != "" {
		name = named.Name()
	}
	return Failure{name, readableMessage(err.Error())}
}

// goValueDump matches the ucanto validator's "%s" rendering of a claimed
// capability, which prints Go pointers instead of the capability.
var goValueDump = regexp.MustCompile(`Cannot derive &\{(\S+) .*\) (did:[^ }]+)\} from`)

// readableMessage rewrites validator messages so callers see the capability,
// not Go memory addresses.
func readableMessage(msg string) string {
	return goValueDump.ReplaceAllString(msg, `Cannot derive {can: "$1", with: "$2"} from`)
}

// MalformedCaveats is returned when an invocation's own caveats are invalid
// (bytes 0, servedAt negative, resource not a link): the name ucanto uses.
func MalformedCaveats(can string, err error) Failure {
	return Failure{"MalformedCapability", fmt.Sprintf("invalid caveats for %s: %s", can, err.Error())}
}

// UcanRevoke is the capability that revokes a delegation (w3up's UCAN.revoke).
const UcanRevoke = "ucan/revoke"
