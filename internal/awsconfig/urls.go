package awsconfig

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Default table names, after the table prefix. All but the ledger's are the
// names Storacha's w3infra gives these tables after its "<stage>-w3infra-"
// prefix, so dynamodb://prod-w3infra- reads Storacha's production tables as
// they are.
const (
	ConsumerTable     = "consumer"
	SubscriptionTable = "subscription"
	CustomerTable     = "customer"
	RevocationTable   = "revocation"
	EventsTable       = "egress-traffic-events"
	MonthlyTable      = "egress-traffic-monthly"
	// LedgerTable is egressd's own: Storacha has no such table, and egressd
	// keeps its billing state there rather than in Storacha's.
	LedgerTable = "egressd-ledger"
)

// DeadLetterSuffix names a queue's dead-letter queue unless the URL names one.
const DeadLetterSuffix = "-dlq"

// Bucket is where receipts are kept, from s3://BUCKET[/PREFIX][?path-style=BOOL].
type Bucket struct {
	Name string
	// Prefix is prepended to every key, without leading or trailing slash;
	// empty for the bucket's root.
	Prefix string
	// PathStyle forces path-style (true) or virtual-hosted (false)
	// addressing; nil leaves the choice to NewS3.
	PathStyle *bool
}

// Queue names the event queue and its dead-letter queue, from
// sqs://QUEUE_NAME[?dlq=NAME].
type Queue struct {
	Name       string
	DeadLetter string
}

// Tables names egressd's DynamoDB tables, from
// dynamodb://[TABLE_PREFIX][?consumer=NAME&subscription=NAME&customer=NAME&revocation=NAME&events=NAME&monthly=NAME&ledger=NAME].
// A query parameter names that table in full (the prefix is not added).
type Tables struct {
	Consumer     string // space -> customer, Storacha's "consumer" table
	Subscription string // customer -> provider, Storacha's "subscription" table
	Customer     string // customer -> payment account, Storacha's "customer" table
	Revocation   string // revoked delegations, Storacha's "revocation" table
	Events       string // one row per billed event, Storacha's "egress-traffic-events"
	Monthly      string // per customer, month and space totals, Storacha's "egress-traffic-monthly"
	Ledger       string // egressd's billing ledger, its own table ("egressd-ledger")
}

// tableParam is one URL parameter of Tables and the field it sets.
type tableParam struct {
	param string
	name  *string
}

// params lists the URL parameters of t in the order its documentation
// lists them.
func (t *Tables) params() []tableParam {
	return []tableParam{
		{"consumer", &t.Consumer},
		{"subscription", &t.Subscription},
		{"customer", &t.Customer},
		{"revocation", &t.Revocation},
		{"events", &t.Events},
		{"monthly", &t.Monthly},
		{"ledger", &t.Ledger},
	}
}

// ParseS3 reads s3://BUCKET[/PREFIX][?path-style=true|false].
func ParseS3(raw string) (Bucket, error) {
	rest, query, err := splitURL(raw, "s3", "s3://BUCKET[/PREFIX]")
	if err != nil {
		return Bucket{}, err
	}
	name, prefix, _ := strings.Cut(rest, "/")
	b := Bucket{Name: name, Prefix: strings.Trim(prefix, "/")}
	if err := validBucket(b.Name); err != nil {
		return Bucket{}, fmt.Errorf("bad S3 URL %q: %w", raw, err)
	}
	if strings.Contains(b.Prefix, "//") {
		return Bucket{}, fmt.Errorf("bad S3 URL %q: the prefix %q has an empty path segment", raw, b.Prefix)
	}
	for key, vals := range query {
		switch key {
		case "path-style":
			v, err := strconv.ParseBool(vals[len(vals)-1])
			if err != nil {
				return Bucket{}, fmt.Errorf("bad S3 URL %q: path-style must be true or false", raw)
			}
			b.PathStyle = &v
		default:
			return Bucket{}, fmt.Errorf("bad S3 URL %q: unknown parameter %q (known: path-style)", raw, key)
		}
	}
	return b, nil
}

// String is the URL that ParseS3 reads back into b.
func (b Bucket) String() string {
	s := "s3://" + b.Name
	if b.Prefix != "" {
		s += "/" + b.Prefix
	}
	if b.PathStyle != nil {
		s += "?path-style=" + strconv.FormatBool(*b.PathStyle)
	}
	return s
}

// ParseSQS reads sqs://QUEUE_NAME[?dlq=NAME]. The dead-letter queue is
// QUEUE_NAME-dlq unless named.
func ParseSQS(raw string) (Queue, error) {
	rest, query, err := splitURL(raw, "sqs", "sqs://QUEUE_NAME")
	if err != nil {
		return Queue{}, err
	}
	q := Queue{Name: rest, DeadLetter: rest + DeadLetterSuffix}
	for key, vals := range query {
		switch key {
		case "dlq":
			q.DeadLetter = vals[len(vals)-1]
		default:
			return Queue{}, fmt.Errorf("bad SQS URL %q: unknown parameter %q (known: dlq)", raw, key)
		}
	}
	if err := validQueue(q.Name); err != nil {
		return Queue{}, fmt.Errorf("bad SQS URL %q: %w", raw, err)
	}
	if err := validQueue(q.DeadLetter); err != nil {
		return Queue{}, fmt.Errorf("bad SQS URL %q: dead-letter queue: %w", raw, err)
	}
	if q.DeadLetter == q.Name {
		return Queue{}, fmt.Errorf("bad SQS URL %q: the dead-letter queue must differ from the queue", raw)
	}
	return q, nil
}

// String is the URL that ParseSQS reads back into q.
func (q Queue) String() string {
	s := "sqs://" + q.Name
	if q.DeadLetter != q.Name+DeadLetterSuffix {
		s += "?dlq=" + url.QueryEscape(q.DeadLetter)
	}
	return s
}

// ParseDynamoDB reads
// dynamodb://[TABLE_PREFIX][?consumer=NAME&subscription=NAME&customer=NAME&revocation=NAME&events=NAME&monthly=NAME&ledger=NAME].
// Each table is named TABLE_PREFIX + its default name (ConsumerTable...)
// unless a parameter names it.
func ParseDynamoDB(raw string) (Tables, error) {
	prefix, query, err := splitURL(raw, "dynamodb", "dynamodb://[TABLE_PREFIX]")
	if err != nil {
		return Tables{}, err
	}
	if strings.Contains(prefix, "/") {
		return Tables{}, fmt.Errorf("bad DynamoDB URL %q: the table prefix cannot contain '/'", raw)
	}
	t := Tables{
		Consumer:     prefix + ConsumerTable,
		Subscription: prefix + SubscriptionTable,
		Customer:     prefix + CustomerTable,
		Revocation:   prefix + RevocationTable,
		Events:       prefix + EventsTable,
		Monthly:      prefix + MonthlyTable,
		Ledger:       prefix + LedgerTable,
	}
	names := t.params()
	var known []string
	for _, n := range names {
		known = append(known, n.param)
	}
	for key, vals := range query {
		i := slices.IndexFunc(names, func(n tableParam) bool { return n.param == key })
		if i < 0 {
			return Tables{}, fmt.Errorf("bad DynamoDB URL %q: unknown parameter %q (known: %s)", raw, key, strings.Join(known, ", "))
		}
		*names[i].name = vals[len(vals)-1]
	}
	seen := map[string]string{}
	for _, n := range names {
		if err := validTable(*n.name); err != nil {
			return Tables{}, fmt.Errorf("bad DynamoDB URL %q: %w", raw, err)
		}
		// One table cannot hold two layouts: aws init would check one
		// against the other's keys and fail, or a store would write rows
		// another reads as its own.
		if other, ok := seen[*n.name]; ok {
			return Tables{}, fmt.Errorf("bad DynamoDB URL %q: the %s and %s tables are both named %q", raw, other, n.param, *n.name)
		}
		seen[*n.name] = n.param
	}
	return t, nil
}

// splitURL checks the scheme of raw and returns what follows "scheme://" up
// to the query, and the query. It does not use url.Parse for the part before
// the query because table prefixes are not valid host names.
func splitURL(raw, scheme, shape string) (string, url.Values, error) {
	rest, ok := strings.CutPrefix(raw, scheme+"://")
	if !ok {
		return "", nil, fmt.Errorf("bad %s URL %q: want %s", schemeName(scheme), raw, shape)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("bad %s URL %q: query: %w", schemeName(scheme), raw, err)
	}
	return rest, query, nil
}

func schemeName(scheme string) string {
	switch scheme {
	case "dynamodb":
		return "DynamoDB"
	default:
		return strings.ToUpper(scheme)
	}
}

// validBucket applies S3's general-purpose bucket naming rules.
func validBucket(name string) error {
	if name == "" {
		return fmt.Errorf("no bucket: want s3://BUCKET[/PREFIX]")
	}
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, '.' and '-'", name)
		}
	}
	if !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return fmt.Errorf("bucket name %q must begin and end with a letter or digit", name)
	}
	return nil
}

// validQueue applies SQS's naming rules for standard queues.
func validQueue(name string) error {
	if name == "" {
		return fmt.Errorf("no queue name: want sqs://QUEUE_NAME")
	}
	if strings.HasSuffix(name, ".fifo") {
		return fmt.Errorf("queue %q is a FIFO queue; egressd needs a standard queue", name)
	}
	if len(name) > 80 {
		return fmt.Errorf("queue name %q is longer than 80 characters", name)
	}
	for _, c := range name {
		if !(alnum(byte(c)) && c < 128 || c == '-' || c == '_') {
			return fmt.Errorf("queue name %q may hold only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

// validTable applies DynamoDB's table naming rules.
func validTable(name string) error {
	if len(name) < 3 || len(name) > 255 {
		return fmt.Errorf("table name %q must be 3 to 255 characters long", name)
	}
	for _, c := range name {
		if !(alnum(byte(c)) && c < 128 || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("table name %q may hold only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
