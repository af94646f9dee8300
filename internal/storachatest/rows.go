package storachatest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The kinds of violation CheckRow, CheckNoExtraAttributes and
// CheckSubscriptionID report; every error they return wraps one of these
// (test with errors.Is), inside a *RowError naming the attribute.
var (
	ErrUnknownTable     = errors.New("not one of Storacha's six tables")
	ErrMissing          = errors.New("required attribute missing")
	ErrType             = errors.New("wrong DynamoDB type")
	ErrFormat           = errors.New("value not in the form Storacha's code reads and writes")
	ErrKeyMismatch      = errors.New("composite key does not match the attributes it is made of")
	ErrUnknownAttribute = errors.New("attribute Storacha's code never writes to this table")
	ErrSubscriptionID   = errors.New("subscription is not the ID Storacha derives from the space")
)

// RowError is one violation in one row.
type RowError struct {
	Table     string
	Attribute string // "" for the row as a whole
	Kind      error  // one of the Err variables above
	Detail    string
}

func (e *RowError) Error() string {
	where := e.Table + " row"
	if e.Attribute != "" {
		where += fmt.Sprintf(", attribute %q", e.Attribute)
	}
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", where, e.Kind)
	}
	return fmt.Sprintf("%s: %v: %s", where, e.Kind, e.Detail)
}

func (e *RowError) Unwrap() error { return e.Kind }

// CheckRow checks item against the rules Storacha's code applies to a row of
// table (one of the table name constants): the attributes its decoders
// require, their DynamoDB types, and the forms of their values (DID methods,
// CIDs, ISO 8601 timestamps with milliseconds, composite keys), as the
// per-table rules below document with the w3infra file each mirrors. It
// returns every violation, joined, or nil.
//
// Attributes the rules do not know are not reported here: that is
// CheckNoExtraAttributes, so a test can tell "Storacha cannot read this row"
// from "egressd wrote more than Storacha does".
func CheckRow(table string, item map[string]types.AttributeValue) error {
	r, ok := rowRules(table)
	if !ok {
		return &RowError{Table: table, Kind: ErrUnknownTable}
	}
	var errs []error
	for _, a := range r.attrs {
		if err := a.check(table, item); err != nil {
			errs = append(errs, err)
		}
	}
	if r.row != nil {
		errs = append(errs, r.row(item)...)
	}
	return errors.Join(errs...)
}

// CheckNoExtraAttributes reports every attribute of item that Storacha's code
// never writes to a row of table, each wrapping ErrUnknownAttribute. egressd
// must write only what Storacha writes, so a row egressd wrote should pass
// this as well as CheckRow.
func CheckNoExtraAttributes(table string, item map[string]types.AttributeValue) error {
	r, ok := rowRules(table)
	if !ok {
		return &RowError{Table: table, Kind: ErrUnknownTable}
	}
	names := make([]string, 0, len(item))
	for name := range item {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if slices.ContainsFunc(r.attrs, func(a attrRule) bool { return a.name == name }) {
			continue
		}
		detail := ""
		if r.other != nil {
			var known bool
			if known, detail = r.other(name, item[name]); known {
				continue // a revocation's scope attribute
			}
		}
		errs = append(errs, &RowError{Table: table, Attribute: name, Kind: ErrUnknownAttribute, Detail: detail})
	}
	return errors.Join(errs...)
}

// CheckWritten is what a row egressd wrote must pass: CheckRow,
// CheckNoExtraAttributes and, for a consumer row, CheckSubscriptionID
// (Storacha's only writer of consumer rows keys them by the derived ID).
func CheckWritten(table string, item map[string]types.AttributeValue) error {
	errs := []error{CheckRow(table, item), CheckNoExtraAttributes(table, item)}
	if table == Consumer {
		space, _ := str(item, "consumer")
		sub, _ := str(item, "subscription")
		errs = append(errs, CheckSubscriptionID(space, sub))
	}
	return errors.Join(errs...)
}

// tableRules are the rules for one table's rows.
type tableRules struct {
	attrs []attrRule
	// row checks what spans attributes (composite keys), given the row.
	row func(item map[string]types.AttributeValue) []error
	// other, if set, tells whether an attribute beyond attrs is one
	// Storacha writes (a revocation's scope attributes), and if not, why.
	other func(name string, v types.AttributeValue) (known bool, detail string)
}

// attrRule is one named attribute: its DynamoDB type and value form.
type attrRule struct {
	name     string
	typ      string // "S" or "N"
	required bool
	form     func(string) error // nil: any value of the type
}

func (a attrRule) check(table string, item map[string]types.AttributeValue) error {
	v, present := item[a.name]
	if !present {
		if a.required {
			return &RowError{Table: table, Attribute: a.name, Kind: ErrMissing}
		}
		return nil
	}
	var s string
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		if a.typ != "S" {
			return &RowError{Table: table, Attribute: a.name, Kind: ErrType, Detail: "want " + a.typ + ", got S"}
		}
		s = v.Value
	case *types.AttributeValueMemberN:
		if a.typ != "N" {
			return &RowError{Table: table, Attribute: a.name, Kind: ErrType, Detail: "want " + a.typ + ", got N"}
		}
		s = v.Value
	default:
		return &RowError{Table: table, Attribute: a.name, Kind: ErrType, Detail: fmt.Sprintf("want %s, got %s", a.typ, typeName(v))}
	}
	if a.form != nil {
		if err := a.form(s); err != nil {
			return &RowError{Table: table, Attribute: a.name, Kind: ErrFormat, Detail: err.Error()}
		}
	}
	return nil
}

// str returns item's string attribute name, if it has one.
func str(item map[string]types.AttributeValue, name string) (string, bool) {
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return v.Value, true
}

// typeName names an attribute value's DynamoDB type.
func typeName(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", v), "*types.AttributeValueMember")
	}
}
