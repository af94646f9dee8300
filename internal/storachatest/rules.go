package storachatest

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// rowRules returns the rules for rows of table.
func rowRules(table string) (tableRules, bool) {
	switch table {
	case Consumer:
		return consumerRules(), true
	case Subscription:
		return subscriptionRules(), true
	case Customer:
		return customerRules(), true
	case EgressTrafficEvents:
		return egressEventRules(), true
	case EgressTrafficMonthly:
		return egressMonthlyRules(), true
	case Revocation:
		return revocationRules(), true
	}
	return tableRules{}, false
}

// consumerRules mirror w3infra's billing/data/consumer.js (schema and
// decode: consumer a DID, provider did:web, customer did:mailto, cause a
// version 1 CID, insertedAt and the optional updatedAt dates) and
// upload-api/tables/consumer.js (add writes consumer, customer, provider,
// subscription, cause and insertedAt, always with a cause; its listing reads
// consumer as did:key). The subscription derivation is CheckSubscriptionID.
func consumerRules() tableRules {
	return tableRules{attrs: []attrRule{
		{name: "subscription", typ: "S", required: true, form: nonEmpty},
		{name: "provider", typ: "S", required: true, form: didWeb},
		{name: "consumer", typ: "S", required: true, form: didKey},
		{name: "customer", typ: "S", required: true, form: didMailto},
		{name: "cause", typ: "S", required: true, form: linkV1},
		{name: "insertedAt", typ: "S", required: true, form: isoMillis},
		{name: "updatedAt", typ: "S", form: isoMillis},
	}}
}

// subscriptionRules mirror w3infra's billing/data/subscription.js (customer
// did:mailto, provider did:web, cause a version 1 CID, insertedAt and the
// optional updatedAt dates) and upload-api/tables/subscription.js (add
// writes customer, provider, subscription, cause and insertedAt, always
// with a cause).
func subscriptionRules() tableRules {
	return tableRules{attrs: []attrRule{
		{name: "subscription", typ: "S", required: true, form: nonEmpty},
		{name: "provider", typ: "S", required: true, form: didWeb},
		{name: "customer", typ: "S", required: true, form: didMailto},
		{name: "cause", typ: "S", required: true, form: linkV1},
		{name: "insertedAt", typ: "S", required: true, form: isoMillis},
		{name: "updatedAt", typ: "S", form: isoMillis},
	}}
}

// customerRules mirror w3infra's billing/data/customer.js: customer
// did:mailto; account optional, a stripe: URI (a Stripe customer ID,
// stripe:cus_...); product required; details optional text;
// reservedCapacity an optional number; insertedAt a date, updatedAt an
// optional one. The table's props also declare a "cause" field, but no
// writer (customer.js encode, updateProduct) sets it.
func customerRules() tableRules {
	return tableRules{attrs: []attrRule{
		{name: "customer", typ: "S", required: true, form: didMailto},
		{name: "account", typ: "S", form: stripeAccount},
		{name: "product", typ: "S", required: true, form: nonEmpty},
		{name: "details", typ: "S"},
		{name: "reservedCapacity", typ: "N", form: count},
		{name: "insertedAt", typ: "S", required: true, form: isoMillis},
		{name: "updatedAt", typ: "S", form: isoMillis},
	}}
}

// egressEventRules mirror w3infra's billing/data/egress.js: space did:key,
// customer did:mailto, resource and cause CIDs, bytes a number, servedAt a
// date; encode writes pk = "<space>#<resource>" and
// sk = "<servedAt>#<cause>", which lister.decodeKey splits on "#".
func egressEventRules() tableRules {
	return tableRules{
		attrs: []attrRule{
			{name: "pk", typ: "S", required: true},
			{name: "sk", typ: "S", required: true},
			{name: "space", typ: "S", required: true, form: didKey},
			{name: "customer", typ: "S", required: true, form: didMailto},
			{name: "resource", typ: "S", required: true, form: link},
			{name: "bytes", typ: "N", required: true, form: count},
			{name: "servedAt", typ: "S", required: true, form: isoMillis},
			{name: "cause", typ: "S", required: true, form: link},
		},
		row: func(item map[string]types.AttributeValue) []error {
			return joinedKeys(EgressTrafficEvents, item,
				joinedKey{"pk", "", []string{"space", "resource"}},
				joinedKey{"sk", "", []string{"servedAt", "cause"}})
		},
	}
}

// egressMonthlyRules mirror w3infra's billing/data/egress-monthly.js:
// customer did:mailto, space did:key, month YYYY-MM, bytes and eventCount
// numbers; encode writes pk = "customer#<customer>" and
// sk = "<month>#<space>", and billing/tables/egress-traffic-monthly.js's
// increment sets space and month and adds to bytes and eventCount.
func egressMonthlyRules() tableRules {
	return tableRules{
		attrs: []attrRule{
			{name: "pk", typ: "S", required: true, form: func(s string) error {
				customer, ok := strings.CutPrefix(s, "customer#")
				if !ok {
					return fmt.Errorf("want customer#<did:mailto>, got %q", s)
				}
				return didMailto(customer)
			}},
			{name: "sk", typ: "S", required: true},
			{name: "space", typ: "S", required: true, form: didKey},
			{name: "month", typ: "S", required: true, form: month},
			{name: "bytes", typ: "N", required: true, form: count},
			{name: "eventCount", typ: "N", required: true, form: count},
		},
		row: func(item map[string]types.AttributeValue) []error {
			return joinedKeys(EgressTrafficMonthly, item, joinedKey{"sk", "", []string{"month", "space"}})
		},
	}
}

// revocationRules mirror w3infra's upload-api/stores/revocations.js: the key
// revoke is the revoked delegation's CID (parseLink), and every other
// attribute is read as one revoker's entry, named by its scope DID and
// holding the map {cause: <CID>} (add and reset write exactly that).
func revocationRules() tableRules {
	return tableRules{
		attrs: []attrRule{{name: "revoke", typ: "S", required: true, form: link}},
		row: func(item map[string]types.AttributeValue) []error {
			var errs []error
			for name, v := range item {
				if name == "revoke" {
					continue
				}
				// The reader parses value.cause of every attribute but
				// revoke, whatever its name.
				m, ok := v.(*types.AttributeValueMemberM)
				if !ok {
					errs = append(errs, &RowError{Table: Revocation, Attribute: name, Kind: ErrType, Detail: "want M {cause}, got " + typeName(v)})
					continue
				}
				cause, ok := m.Value["cause"]
				if !ok {
					errs = append(errs, &RowError{Table: Revocation, Attribute: name + ".cause", Kind: ErrMissing})
					continue
				}
				s, ok := cause.(*types.AttributeValueMemberS)
				if !ok {
					errs = append(errs, &RowError{Table: Revocation, Attribute: name + ".cause", Kind: ErrType, Detail: "want S, got " + typeName(cause)})
					continue
				}
				if err := link(s.Value); err != nil {
					errs = append(errs, &RowError{Table: Revocation, Attribute: name + ".cause", Kind: ErrFormat, Detail: err.Error()})
				}
			}
			return errs
		},
		other: func(name string, v types.AttributeValue) (bool, string) {
			if err := anyDID(name); err != nil {
				return false, "Storacha names a revoker's attribute by its scope DID"
			}
			if m, ok := v.(*types.AttributeValueMemberM); ok {
				for k := range m.Value {
					if k != "cause" {
						return false, fmt.Sprintf("the scope map holds only cause, not %q", k)
					}
				}
			}
			return true, ""
		},
	}
}

// joinedKey is a composite key attribute made of other attributes joined
// by "#", after a fixed prefix.
type joinedKey struct {
	name, prefix string
	parts        []string
}

// joinedKeys reports each composite key of item that is not its parts
// joined. A missing part is reported by the part's own rule.
func joinedKeys(table string, item map[string]types.AttributeValue, keys ...joinedKey) []error {
	var errs []error
next:
	for _, k := range keys {
		got, ok := str(item, k.name)
		if !ok {
			continue
		}
		var parts []string
		for _, p := range k.parts {
			v, ok := str(item, p)
			if !ok {
				continue next
			}
			parts = append(parts, v)
		}
		if want := k.prefix + strings.Join(parts, "#"); got != want {
			errs = append(errs, &RowError{Table: table, Attribute: k.name, Kind: ErrKeyMismatch,
				Detail: fmt.Sprintf("want %q (%s), got %q", want, strings.Join(k.parts, "#"), got)})
		}
	}
	return errs
}
