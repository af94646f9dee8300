package storachatest

import "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

// w3infraCommit is the storacha/w3infra commit the definitions below were
// read from.
const w3infraCommit = "33fa08d2fc43c62af3ae5994f5d649b1e34cf0c7"

// Tables returns the six tables, as storacha/w3infra defines them (each
// one's Source names its file). w3infra writes them as SST TableProps; SST's
// Table construct (sst v2, packages/sst/src/constructs/Table.ts) makes every
// table PAY_PER_REQUEST with point-in-time recovery on, gives DynamoDB
// attribute definitions only for key attributes, and turns a GSI's list of
// attributes into an INCLUDE projection of exactly those. The stacks
// (stacks/upload-db-stack.js, stacks/billing-db-stack.js) pass the props
// unchanged, with no stream and no cdk overrides, for these six.
//
// A fresh slice each call, so no test can change another's definitions.
func Tables() []Table {
	s := types.ScalarAttributeTypeS
	key := func(name string) Key { return Key{Name: name, Type: s} }
	sortKey := func(name string) *Key { k := key(name); return &k }
	include := types.ProjectionTypeInclude
	tables := []Table{
		{
			// upload-api/tables/index.js, consumerTableProps; created in
			// stacks/upload-db-stack.js as "consumer".
			Name:   Consumer,
			Source: "upload-api/tables/index.js (consumerTableProps)",
			Hash:   key("subscription"), Range: sortKey("provider"),
			Indexes: []Index{
				{Name: "consumer", Hash: key("consumer"), Projection: include, NonKey: []string{"provider", "subscription"}},
				{Name: "consumerV2", Hash: key("consumer"), Projection: include, NonKey: []string{"provider", "subscription", "customer"}},
				{Name: "provider", Hash: key("provider"), Projection: include, NonKey: []string{"consumer"}},
				{Name: "customer", Hash: key("customer"), Projection: include, NonKey: []string{"consumer", "provider", "subscription", "cause"}},
			},
		},
		{
			// upload-api/tables/index.js, subscriptionTableProps; created in
			// stacks/upload-db-stack.js as "subscription".
			Name:   Subscription,
			Source: "upload-api/tables/index.js (subscriptionTableProps)",
			Hash:   key("subscription"), Range: sortKey("provider"),
			Indexes: []Index{
				{Name: "customer", Hash: key("customer"), Range: sortKey("provider"), Projection: include, NonKey: []string{"cause", "subscription"}},
				{Name: "provider", Hash: key("provider"), Projection: include, NonKey: []string{"customer"}},
			},
		},
		{
			// billing/tables/customer.js, customerTableProps; created in
			// stacks/billing-db-stack.js as "customer".
			Name:   Customer,
			Source: "billing/tables/customer.js (customerTableProps)",
			Hash:   key("customer"),
			Indexes: []Index{
				{Name: "account", Hash: key("account"), Projection: include, NonKey: []string{"customer", "product"}},
			},
		},
		{
			// upload-api/tables/index.js, revocationTableProps; created in
			// stacks/upload-db-stack.js as "revocation". No indexes.
			Name:   Revocation,
			Source: "upload-api/tables/index.js (revocationTableProps)",
			Hash:   key("revoke"),
		},
		{
			// billing/tables/egress-traffic.js, egressTrafficTableProps;
			// created in stacks/billing-db-stack.js as "egress-traffic-events".
			Name:   EgressTrafficEvents,
			Source: "billing/tables/egress-traffic.js (egressTrafficTableProps)",
			Hash:   key("pk"), Range: sortKey("sk"),
			Indexes: []Index{
				{Name: "customer", Hash: key("customer"), Range: sortKey("sk"), Projection: include, NonKey: []string{"space", "resource", "bytes", "cause", "servedAt"}},
				{Name: "space", Hash: key("space"), Range: sortKey("servedAt"), Projection: include, NonKey: []string{"resource", "bytes"}},
			},
		},
		{
			// billing/tables/egress-traffic-monthly.js,
			// egressTrafficMonthlyTableProps; created in
			// stacks/billing-db-stack.js as "egress-traffic-monthly".
			Name:   EgressTrafficMonthly,
			Source: "billing/tables/egress-traffic-monthly.js (egressTrafficMonthlyTableProps)",
			Hash:   key("pk"), Range: sortKey("sk"),
			Indexes: []Index{
				{Name: "space-month-index", Hash: key("space"), Range: sortKey("month"), Projection: include, NonKey: []string{"bytes", "eventCount"}},
			},
		},
	}
	for i := range tables {
		tables[i].BillingMode = types.BillingModePayPerRequest
		tables[i].PointInTimeRecovery = true
	}
	return tables
}
