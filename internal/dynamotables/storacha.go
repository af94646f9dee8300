package dynamotables

// Storacha's tables, as storacha/w3infra defines them: consumer,
// subscription and revocation in upload-api/tables/index.js (created by
// stacks/upload-db-stack.js), customer in billing/tables/customer.js and the
// egress tables in billing/tables/egress-traffic.js and
// egress-traffic-monthly.js (created by stacks/billing-db-stack.js). Read
// from w3infra at commit 33fa08d2fc43c62af3ae5994f5d649b1e34cf0c7.
//
// Every index of these tables is listed, egressd's or not: a table that
// `aws init` creates without --storacha must be one Storacha's own code
// can use.

// Index names of the consumer table.
const (
	ConsumerConsumerIndex = "consumer" // superseded by consumerV2 in w3infra, still created
	ConsumerIndex         = "consumerV2"
	ConsumerProviderIndex = "provider"
	ConsumerCustomerIndex = "customer"
)

// Index names of the subscription table.
const (
	SubscriptionCustomerIndex = "customer"
	SubscriptionProviderIndex = "provider"
)

// CustomerAccountIndex is the customer table's index by payment account.
const CustomerAccountIndex = "account"

// Index names of the egress-traffic-events table.
const (
	EventsCustomerIndex = "customer"
	EventsSpaceIndex    = "space"
)

// MonthlySpaceIndex is the egress-traffic-monthly table's index by space and
// month.
const MonthlySpaceIndex = "space-month-index"

// Consumer is Storacha's consumer table: which subscription (of a customer,
// to a provider) a space consumes.
func Consumer() Table {
	return storacha(Key{Hash: str("subscription"), Range: str("provider")},
		include(ConsumerConsumerIndex, Key{Hash: str("consumer")}, "provider", "subscription"),
		include(ConsumerIndex, Key{Hash: str("consumer")}, "provider", "subscription", "customer"),
		include(ConsumerProviderIndex, Key{Hash: str("provider")}, "consumer"),
		include(ConsumerCustomerIndex, Key{Hash: str("customer")}, "consumer", "provider", "subscription", "cause"),
	)
}

// Subscription is Storacha's subscription table: a customer's subscription
// to a provider.
func Subscription() Table {
	return storacha(Key{Hash: str("subscription"), Range: str("provider")},
		include(SubscriptionCustomerIndex, Key{Hash: str("customer"), Range: str("provider")}, "cause", "subscription"),
		include(SubscriptionProviderIndex, Key{Hash: str("provider")}, "customer"),
	)
}

// Customer is Storacha's customer table: a customer's payment account
// ("stripe:cus_...") and product.
func Customer() Table {
	return storacha(Key{Hash: str("customer")},
		include(CustomerAccountIndex, Key{Hash: str("account")}, "customer", "product"),
	)
}

// Revocation is Storacha's revocation table: one row per revoked
// delegation, one map attribute per revoking context.
func Revocation() Table {
	return storacha(Key{Hash: str("revoke")})
}

// Events is Storacha's egress-traffic-events table: one row per egress
// event, pk "<space>#<resource>", sk "<servedAt>#<cause>".
func Events() Table {
	return storacha(Key{Hash: str("pk"), Range: str("sk")},
		include(EventsCustomerIndex, Key{Hash: str("customer"), Range: str("sk")}, "space", "resource", "bytes", "cause", "servedAt"),
		include(EventsSpaceIndex, Key{Hash: str("space"), Range: str("servedAt")}, "resource", "bytes"),
	)
}

// Monthly is Storacha's egress-traffic-monthly table: per customer, month
// and space totals, pk "customer#<customer>", sk "<YYYY-MM>#<space>".
func Monthly() Table {
	return storacha(Key{Hash: str("pk"), Range: str("sk")},
		include(MonthlySpaceIndex, Key{Hash: str("space"), Range: str("month")}, "bytes", "eventCount"),
	)
}
