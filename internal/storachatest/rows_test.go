package storachatest_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/egressd/egressd/internal/storachatest"
)

// Values shaped like those of w3infra's test helpers
// (billing/test/helpers/*.js): a space DID from an ed25519 signer, an
// account DID did:mailto:<domain>:<name>, a Stripe account
// stripe:cus_<14 alphanumerics>, CIDs of raw blocks (randomLink) and of
// dag-cbor invocations, and times from Date.toISOString.
const (
	space    = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	customer = "did:mailto:fsqzkjwv.storage:cqmjnfa"
	provider = "did:web:up.storacha.network"
	account  = "stripe:cus_8Hd3kQzP0aZ1xY"
	at       = "2024-05-17T09:41:12.345Z"
	later    = "2024-05-18T10:00:00.000Z"
)

// Subscription IDs w3infra derives, (await CBOR.write({ consumer })).cid
// with @ucanto/core, for two spaces (the same vectors as
// customers/dynamodb's tests).
var subscriptionVectors = map[string]string{
	"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK": "bafyreihiffu3ivgk7nirr2lfxguvw4obelaswi5zbcrk4exoul45guvzaq",
	"did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9": "bafyreig6gxs53ed27uelraxtu2m5j2lt6sv2rvcacuaetfa72yxjbsngwm",
}

// newCID returns the CID of data under codec, as a version 1 string.
func newCID(t testing.TB, codec uint64, data string) string {
	t.Helper()
	mh, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(codec, mh).String()
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

type row = map[string]types.AttributeValue

// fixtures returns one valid row per table, each as w3infra's encoders (or,
// for consumer and subscription, upload-api's add) write it from the test
// helpers' values: randomCustomer, randomConsumer, randomSubscription,
// randomEgressEvent, the egress-monthly tests' increment, a revocation.
func fixtures(t testing.TB) map[string]row {
	resource := newCID(t, cid.Raw, "resource")
	cause := newCID(t, cid.DagCBOR, "invocation")
	sub := subscriptionVectors[space]
	return map[string]row{
		storachatest.Customer: {
			"customer": s(customer), "account": s(account), "product": s("starter"),
			"insertedAt": s(at), "updatedAt": s(later),
		},
		storachatest.Consumer: {
			"consumer": s(space), "provider": s(provider), "subscription": s(sub),
			"customer": s(customer), "cause": s(cause), "insertedAt": s(at),
		},
		storachatest.Subscription: {
			"customer": s(customer), "provider": s(provider), "subscription": s(sub),
			"cause": s(cause), "insertedAt": s(at),
		},
		storachatest.EgressTrafficEvents: {
			"pk": s(space + "#" + resource), "sk": s(at + "#" + cause),
			"space": s(space), "customer": s(customer), "resource": s(resource),
			"bytes": n("734221"), "servedAt": s(at), "cause": s(cause),
		},
		storachatest.EgressTrafficMonthly: {
			"pk": s("customer#" + customer), "sk": s("2024-01#" + space),
			"space": s(space), "month": s("2024-01"), "bytes": n("1000"), "eventCount": n("1"),
		},
		storachatest.Revocation: {
			"revoke": s(newCID(t, cid.DagCBOR, "delegation")),
			"did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9": &types.AttributeValueMemberM{Value: row{"cause": s(cause)}},
		},
	}
}

func TestFixturesPass(t *testing.T) {
	for table, item := range fixtures(t) {
		if err := storachatest.CheckWritten(table, item); err != nil {
			t.Errorf("%s: %v", table, err)
		}
	}
}

// TestBillingHelperRows checks rows as billing's own test helpers produce
// them, which the checks must accept though upload-api would not write them
// so: randomConsumer's subscription is a random raw CID and it sets
// updatedAt; randomCustomer without an account (the free tier).
func TestBillingHelperRows(t *testing.T) {
	f := fixtures(t)
	consumer := maps.Clone(f[storachatest.Consumer])
	consumer["subscription"] = s(newCID(t, cid.Raw, "random subscription"))
	consumer["updatedAt"] = s(later)
	if err := storachatest.CheckRow(storachatest.Consumer, consumer); err != nil {
		t.Errorf("CheckRow(randomConsumer row): %v", err)
	}
	if err := storachatest.CheckNoExtraAttributes(storachatest.Consumer, consumer); err != nil {
		t.Errorf("CheckNoExtraAttributes(randomConsumer row): %v", err)
	}
	// upload-api derives the subscription, so egressd writing this would be wrong.
	if err := storachatest.CheckWritten(storachatest.Consumer, consumer); !errors.Is(err, storachatest.ErrSubscriptionID) {
		t.Errorf("CheckWritten(random subscription) = %v, want ErrSubscriptionID", err)
	}
	free := maps.Clone(f[storachatest.Customer])
	delete(free, "account")
	free["reservedCapacity"] = n("1099511627776")
	free["details"] = s(`{"name":"Alice"}`)
	if err := storachatest.CheckWritten(storachatest.Customer, free); err != nil {
		t.Errorf("free-tier customer: %v", err)
	}
}

func TestSubscriptionID(t *testing.T) {
	for space, want := range subscriptionVectors {
		if got, err := storachatest.SubscriptionID(space); err != nil || got != want {
			t.Errorf("SubscriptionID(%s) = %s, %v; want %s", space, got, err, want)
		}
	}
}

// TestViolations breaks each fixture in each way Storacha's code would
// refuse (or never write), and checks the right kind of error names the
// right attribute.
func TestViolations(t *testing.T) {
	f := fixtures(t)
	v0 := cid.NewCidV0(func() multihash.Multihash { m, _ := multihash.Sum([]byte("x"), multihash.SHA2_256, -1); return m }()).String()
	type change func(row)
	set := func(k string, v types.AttributeValue) change { return func(r row) { r[k] = v } }
	del := func(k string) change { return func(r row) { delete(r, k) } }
	cases := []struct {
		table, name string
		change      change
		kind        error
		attribute   string
	}{
		{storachatest.Customer, "no product", del("product"), storachatest.ErrMissing, "product"},
		{storachatest.Customer, "no customer", del("customer"), storachatest.ErrMissing, "customer"},
		{storachatest.Customer, "no insertedAt", del("insertedAt"), storachatest.ErrMissing, "insertedAt"},
		{storachatest.Customer, "customer is a did:key", set("customer", s(space)), storachatest.ErrFormat, "customer"},
		{storachatest.Customer, "account is not a Stripe customer", set("account", s("stripe:acct_123")), storachatest.ErrFormat, "account"},
		{storachatest.Customer, "account without scheme", set("account", s("cus_123")), storachatest.ErrFormat, "account"},
		{storachatest.Customer, "reservedCapacity as S", set("reservedCapacity", s("10")), storachatest.ErrType, "reservedCapacity"},
		{storachatest.Customer, "product as N", set("product", n("1")), storachatest.ErrType, "product"},
		{storachatest.Customer, "time without milliseconds", set("insertedAt", s("2024-05-17T09:41:12Z")), storachatest.ErrFormat, "insertedAt"},
		{storachatest.Customer, "time with an offset", set("updatedAt", s("2024-05-17T09:41:12.345+02:00")), storachatest.ErrFormat, "updatedAt"},
		{storachatest.Customer, "unix time", set("insertedAt", n("1715938872")), storachatest.ErrType, "insertedAt"},

		{storachatest.Consumer, "no cause", del("cause"), storachatest.ErrMissing, "cause"},
		{storachatest.Consumer, "cause a v0 CID", set("cause", s(v0)), storachatest.ErrFormat, "cause"},
		{storachatest.Consumer, "cause not a CID", set("cause", s("invocation-1")), storachatest.ErrFormat, "cause"},
		{storachatest.Consumer, "provider did:key", set("provider", s(space)), storachatest.ErrFormat, "provider"},
		{storachatest.Consumer, "consumer did:mailto", set("consumer", s(customer)), storachatest.ErrFormat, "consumer"},
		{storachatest.Consumer, "customer missing", del("customer"), storachatest.ErrMissing, "customer"},
		{storachatest.Consumer, "subscription empty", set("subscription", s("")), storachatest.ErrFormat, "subscription"},
		{storachatest.Consumer, "insertedAt as a date only", set("insertedAt", s("2024-05-17")), storachatest.ErrFormat, "insertedAt"},

		{storachatest.Subscription, "no cause", del("cause"), storachatest.ErrMissing, "cause"},
		{storachatest.Subscription, "customer did:web", set("customer", s(provider)), storachatest.ErrFormat, "customer"},
		{storachatest.Subscription, "provider missing", del("provider"), storachatest.ErrMissing, "provider"},
		{storachatest.Subscription, "subscription as a list", set("subscription", &types.AttributeValueMemberL{}), storachatest.ErrType, "subscription"},

		{storachatest.EgressTrafficEvents, "pk of another resource", set("pk", s(space+"#"+v0)), storachatest.ErrKeyMismatch, "pk"},
		{storachatest.EgressTrafficEvents, "sk without cause", set("sk", s(at)), storachatest.ErrKeyMismatch, "sk"},
		{storachatest.EgressTrafficEvents, "bytes as S", set("bytes", s("10")), storachatest.ErrType, "bytes"},
		{storachatest.EgressTrafficEvents, "bytes negative", set("bytes", n("-1")), storachatest.ErrFormat, "bytes"},
		{storachatest.EgressTrafficEvents, "space did:web", set("space", s(provider)), storachatest.ErrFormat, "space"},
		{storachatest.EgressTrafficEvents, "customer missing", del("customer"), storachatest.ErrMissing, "customer"},
		{storachatest.EgressTrafficEvents, "servedAt in seconds", set("servedAt", s("2024-05-17T09:41:12Z")), storachatest.ErrFormat, "servedAt"},
		{storachatest.EgressTrafficEvents, "resource not a CID", set("resource", s("/ipfs/x")), storachatest.ErrFormat, "resource"},

		{storachatest.EgressTrafficMonthly, "pk without prefix", set("pk", s(customer)), storachatest.ErrFormat, "pk"},
		{storachatest.EgressTrafficMonthly, "pk of a did:key", set("pk", s("customer#"+space)), storachatest.ErrFormat, "pk"},
		{storachatest.EgressTrafficMonthly, "sk of another month", set("sk", s("2024-02#"+space)), storachatest.ErrKeyMismatch, "sk"},
		{storachatest.EgressTrafficMonthly, "month 13", set("month", s("2024-13")), storachatest.ErrFormat, "month"},
		{storachatest.EgressTrafficMonthly, "month with a day", set("month", s("2024-01-01")), storachatest.ErrFormat, "month"},
		{storachatest.EgressTrafficMonthly, "no eventCount", del("eventCount"), storachatest.ErrMissing, "eventCount"},
		{storachatest.EgressTrafficMonthly, "eventCount fractional", set("eventCount", n("1.5")), storachatest.ErrFormat, "eventCount"},

		{storachatest.Revocation, "no revoke", del("revoke"), storachatest.ErrMissing, "revoke"},
		{storachatest.Revocation, "scope entry not a map", set("did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9", s("x")), storachatest.ErrType, "did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9"},
		{storachatest.Revocation, "scope entry without cause", set("did:web:up.storacha.network", &types.AttributeValueMemberM{Value: row{}}), storachatest.ErrMissing, "did:web:up.storacha.network.cause"},
		{storachatest.Revocation, "cause not a CID", set("did:web:up.storacha.network", &types.AttributeValueMemberM{Value: row{"cause": s("nope")}}), storachatest.ErrFormat, "did:web:up.storacha.network.cause"},
	}
	for _, c := range cases {
		t.Run(c.table+"/"+c.name, func(t *testing.T) {
			item := maps.Clone(f[c.table])
			c.change(item)
			err := storachatest.CheckRow(c.table, item)
			if !errors.Is(err, c.kind) {
				t.Fatalf("CheckRow = %v, want %v", err, c.kind)
			}
			var re *storachatest.RowError
			if !errors.As(err, &re) || re.Attribute != c.attribute || re.Table != c.table {
				t.Errorf("CheckRow = %v, want it to name %s attribute %q", err, c.table, c.attribute)
			}
			if !errors.Is(storachatest.CheckWritten(c.table, item), c.kind) {
				t.Errorf("CheckWritten passes what CheckRow refuses")
			}
		})
	}
}

// TestExtraAttributes checks that an attribute Storacha never writes passes
// CheckRow (its decoders ignore it) but fails CheckNoExtraAttributes.
func TestExtraAttributes(t *testing.T) {
	f := fixtures(t)
	cases := []struct{ table, attribute string }{
		{storachatest.EgressTrafficEvents, "unsettled"},
		{storachatest.EgressTrafficMonthly, "customer"},
		{storachatest.Customer, "cause"},
		{storachatest.Consumer, "space"},
		{storachatest.Subscription, "consumer"},
		{storachatest.Revocation, "scope"},
	}
	for _, c := range cases {
		item := maps.Clone(f[c.table])
		item[c.attribute] = s("x")
		if c.table == storachatest.Revocation {
			// a well-formed entry under a name that is not a DID
			item[c.attribute] = f[c.table]["did:key:z6MkpzW2izkFjNwMBwwvKqmELaQcH8t54QL5xmBdJg4AB3G9"]
		}
		if err := storachatest.CheckRow(c.table, item); err != nil {
			t.Errorf("%s: CheckRow = %v, want nil (decoders ignore extra attributes)", c.table, err)
		}
		err := storachatest.CheckNoExtraAttributes(c.table, item)
		var re *storachatest.RowError
		if !errors.Is(err, storachatest.ErrUnknownAttribute) || !errors.As(err, &re) || re.Attribute != c.attribute {
			t.Errorf("%s: CheckNoExtraAttributes = %v, want ErrUnknownAttribute on %q", c.table, err, c.attribute)
		}
	}
	// A scope map with more than cause.
	item := maps.Clone(f[storachatest.Revocation])
	item["did:web:up.storacha.network"] = &types.AttributeValueMemberM{Value: row{"cause": f[storachatest.Consumer]["cause"], "at": s(at)}}
	if err := storachatest.CheckNoExtraAttributes(storachatest.Revocation, item); !errors.Is(err, storachatest.ErrUnknownAttribute) {
		t.Errorf("scope map with an extra key: %v, want ErrUnknownAttribute", err)
	}
}

func TestUnknownTable(t *testing.T) {
	for _, check := range []func(string, row) error{storachatest.CheckRow, storachatest.CheckNoExtraAttributes, storachatest.CheckWritten} {
		if err := check("upload", row{}); !errors.Is(err, storachatest.ErrUnknownTable) {
			t.Errorf("check(upload) = %v, want ErrUnknownTable", err)
		}
	}
}

// TestErrorsReadable checks a violation reads as a sentence naming table,
// attribute and the expected form.
func TestErrorsReadable(t *testing.T) {
	item := maps.Clone(fixtures(t)[storachatest.Customer])
	item["insertedAt"] = s("2024-05-17")
	err := storachatest.CheckRow(storachatest.Customer, item)
	for _, want := range []string{"customer row", `"insertedAt"`, storachatest.TimeLayout, `"2024-05-17"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
