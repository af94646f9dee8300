package storachatest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// The value forms Storacha's code writes. Each is at least as strict as the
// schema w3infra reads the value with (a @ucanto/validator Schema or a
// multiformats parse) and matches what its encoders produce, so a value that
// passes here is one Storacha's own writers could have written.

// TimeLayout is how Storacha's encoders write timestamps: JavaScript's
// Date.prototype.toISOString, UTC with exactly three fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// isoMillis accepts a timestamp as Date.toISOString writes it.
func isoMillis(s string) error {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Format(TimeLayout) != s {
		return fmt.Errorf("want an ISO 8601 UTC time with milliseconds like %s, got %q", TimeLayout, s)
	}
	return nil
}

// didMailto accepts did:mailto:<domain>:<local part>, the form of every
// Storacha account DID (Schema.did({ method: 'mailto' })).
func didMailto(s string) error {
	rest, ok := strings.CutPrefix(s, "did:mailto:")
	domain, local, two := strings.Cut(rest, ":")
	if !ok || !two || domain == "" || local == "" || strings.Contains(local, ":") || hasSpace(s) {
		return fmt.Errorf("want did:mailto:<domain>:<local part>, got %q", s)
	}
	return nil
}

// didWeb accepts did:web:<host>, the form of a provider DID
// (Schema.did({ method: 'web' })).
func didWeb(s string) error {
	rest, ok := strings.CutPrefix(s, "did:web:")
	if !ok || rest == "" || hasSpace(s) {
		return fmt.Errorf("want did:web:<host>, got %q", s)
	}
	return nil
}

var base58btc = regexp.MustCompile(`^[1-9A-HJ-NP-Za-km-z]+$`)

// didKey accepts did:key:z<base58btc>, the form of a space DID
// (Schema.did({ method: 'key' })); did:key identifiers are always
// base58btc-multibase, hence the "z".
func didKey(s string) error {
	rest, ok := strings.CutPrefix(s, "did:key:z")
	if !ok || !base58btc.MatchString(rest) {
		return fmt.Errorf("want did:key:z<base58btc key>, got %q", s)
	}
	return nil
}

var anyDIDForm = regexp.MustCompile(`^did:[a-z0-9]+:\S+$`)

// anyDID accepts a DID of any method (Schema.did()).
func anyDID(s string) error {
	if !anyDIDForm.MatchString(s) {
		return fmt.Errorf("want a DID (did:<method>:<id>), got %q", s)
	}
	return nil
}

// link accepts a CID as a multiformats Link's toString writes it: version 0
// in base58btc, version 1 in base32 (Schema.link(), Link.parse).
func link(s string) error {
	c, err := cid.Decode(s)
	if err != nil {
		return fmt.Errorf("want a CID, got %q: %v", s, err)
	}
	if c.String() != s {
		return fmt.Errorf("want the CID %q in its canonical string form %q", s, c.String())
	}
	return nil
}

// linkV1 accepts a version 1 CID in base32 (Schema.link({ version: 1 })).
func linkV1(s string) error {
	if err := link(s); err != nil {
		return err
	}
	if c, _ := cid.Decode(s); c.Version() != 1 {
		return fmt.Errorf("want a version 1 CID, got version 0 %q", s)
	}
	return nil
}

var stripeAccountForm = regexp.MustCompile(`^stripe:cus_[A-Za-z0-9]+$`)

// stripeAccount accepts stripe:cus_<id> (Schema.uri({ protocol: 'stripe:' })
// holding a Stripe customer ID, as the Stripe webhook writes it).
func stripeAccount(s string) error {
	if !stripeAccountForm.MatchString(s) {
		return fmt.Errorf("want stripe:cus_<Stripe customer ID>, got %q", s)
	}
	return nil
}

var monthForm = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)

// month accepts YYYY-MM (egress-monthly.js's pattern, limited to real months
// since its writer takes them from toISOString).
func month(s string) error {
	if !monthForm.MatchString(s) {
		return fmt.Errorf("want a month as YYYY-MM, got %q", s)
	}
	return nil
}

var countForm = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// count accepts a non-negative integer written plainly: byte and event
// counts (Schema.number(), written with Number()).
func count(s string) error {
	if !countForm.MatchString(s) {
		return fmt.Errorf("want a non-negative integer, got %q", s)
	}
	return nil
}

// nonEmpty accepts any string but "".
func nonEmpty(s string) error {
	if s == "" {
		return errors.New("want a non-empty string")
	}
	return nil
}

func hasSpace(s string) bool { return strings.ContainsAny(s, " \t\r\n") }
