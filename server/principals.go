package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	edverifier "github.com/storacha/go-ucanto/principal/ed25519/verifier"
	"github.com/storacha/go-ucanto/validator"
	"golang.org/x/sync/singleflight"
)

// parsePrincipal turns a did:key into a verifier (ed25519, what every ucanto
// client signs with).
func parsePrincipal(str string) (principal.Verifier, error) {
	return edverifier.Parse(str)
}

// PrincipalResolver finds the did:key behind a gateway's did:web: first in a
// static mapping (like Storacha's PRINCIPAL_MAPPING), then, when enabled, by
// fetching https://<host>/.well-known/did.json for hosts the operator
// allows. Answers, found or not, are cached in bounded caches, so hostile
// invocations naming many did:webs cost at most one fetch per name per TTL.
type PrincipalResolver struct {
	static map[did.DID]did.DID
	// fetch is nil when resolution over HTTP is off.
	fetch *DIDWebFetcher

	found  *expirable.LRU[did.DID, did.DID]
	failed *expirable.LRU[did.DID, string]
	// inflight joins concurrent look-ups of one DID into one fetch.
	inflight singleflight.Group
}

// DIDWebFetcher resolves did:web documents over HTTP.
type DIDWebFetcher struct {
	Client *http.Client
	// AllowedHosts are the hosts whose documents may be fetched: a host
	// ("gw.example", "gw.example:8443") or every subdomain of one
	// ("*.gw.example"). Any other did:web is not resolved, so a caller
	// cannot make the service connect where it chooses. Empty allows none.
	AllowedHosts []string
	// TTL is how long a resolved key is trusted before it is fetched again.
	TTL time.Duration
	// FailureTTL is how long a failed resolution is remembered (default a minute).
	FailureTTL time.Duration
	// DocumentURL maps a did:web host to its document's URL; nil is
	// https://<host>/.well-known/did.json (tests point it at 127.0.0.1).
	DocumentURL func(host string) string
}

// principalCacheSize bounds each of the resolver's caches.
const principalCacheSize = 4096

// NewPrincipalResolver builds a resolver from a static mapping (did:web ->
// did:key) and an optional fetcher (nil: no resolution over HTTP).
func NewPrincipalResolver(static map[did.DID]did.DID, fetch *DIDWebFetcher) *PrincipalResolver {
	if static == nil {
		static = map[did.DID]did.DID{}
	}
	r := &PrincipalResolver{static: static, fetch: fetch}
	if fetch != nil {
		failureTTL := fetch.FailureTTL
		if failureTTL <= 0 {
			failureTTL = time.Minute
		}
		r.found = expirable.NewLRU[did.DID, did.DID](principalCacheSize, nil, fetch.TTL)
		r.failed = expirable.NewLRU[did.DID, string](principalCacheSize, nil, failureTTL)
	}
	return r
}

// ParsePrincipalMapping parses "did:web:gw.example=did:key:z6Mk..." pairs.
func ParsePrincipalMapping(pairs []string) (map[did.DID]did.DID, error) {
	m := map[did.DID]did.DID{}
	for _, pair := range pairs {
		from, to, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("principal mapping %q: expected DID=did:key:...", pair)
		}
		fromDID, err := did.Parse(strings.TrimSpace(from))
		if err != nil {
			return nil, fmt.Errorf("principal mapping %q: %w", pair, err)
		}
		toDID, err := did.Parse(strings.TrimSpace(to))
		if err != nil || !strings.HasPrefix(toDID.String(), "did:key:") {
			return nil, fmt.Errorf("principal mapping %q: right side must be a did:key", pair)
		}
		m[fromDID] = toDID
	}
	return m, nil
}

// ResolveDIDKey implements the ucanto validator's principal resolver.
func (r *PrincipalResolver) ResolveDIDKey(ctx context.Context, d did.DID) (did.DID, validator.UnresolvedDID) {
	if key, ok := r.static[d]; ok {
		return key, nil
	}
	if r.fetch == nil || !strings.HasPrefix(d.String(), "did:web:") {
		return did.Undef, validator.NewDIDKeyResolutionError(d, fmt.Errorf("no key is known for %s: add a --principal-mapping", d))
	}
	if key, ok := r.found.Get(d); ok {
		return key, nil
	}
	if reason, ok := r.failed.Get(d); ok {
		return did.Undef, validator.NewDIDKeyResolutionError(d, errors.New(reason))
	}
	host, err := r.fetch.allowedHost(d)
	if err != nil {
		// Not cached: refusing costs nothing, and the cache stays for real names.
		return did.Undef, validator.NewDIDKeyResolutionError(d, err)
	}
	v, err, _ := r.inflight.Do(d.String(), func() (any, error) {
		key, err := r.fetch.resolve(context.WithoutCancel(ctx), d, host)
		if err != nil {
			r.failed.Add(d, err.Error())
			return did.Undef, err
		}
		r.found.Add(d, key)
		return key, nil
	})
	if err != nil {
		return did.Undef, validator.NewDIDKeyResolutionError(d, err)
	}
	return v.(did.DID), nil
}

// allowedHost returns the host of a bare-host did:web (a port escaped as
// %3A) when AllowedHosts names it. The path form (did:web:host:path) is
// not used by gateways and is not resolved.
func (f *DIDWebFetcher) allowedHost(d did.DID) (string, error) {
	raw := strings.TrimPrefix(d.String(), "did:web:")
	host, err := url.PathUnescape(raw)
	if err != nil || host == "" || strings.Contains(raw, ":") || strings.ContainsAny(host, "/?#@") {
		return "", fmt.Errorf("%s is not a did:web this service can resolve", d)
	}
	host = strings.ToLower(host)
	for _, allowed := range f.AllowedHosts {
		allowed = strings.ToLower(allowed)
		if host == allowed || (strings.HasPrefix(allowed, "*.") && strings.HasSuffix(host, allowed[1:])) {
			return host, nil
		}
	}
	return "", fmt.Errorf("%s is not on this service's --resolve-did-web list: add its host there, or a --principal-mapping", d)
}

// maxDIDDocument bounds what is read from a remote DID document.
const maxDIDDocument = 64 << 10

func (f *DIDWebFetcher) resolve(ctx context.Context, d did.DID, host string) (did.DID, error) {
	docURL := "https://" + host + "/.well-known/did.json"
	if f.DocumentURL != nil {
		docURL = f.DocumentURL(host)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return did.Undef, fmt.Errorf("resolving %s: %w", d, err)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return did.Undef, fmt.Errorf("resolving %s: fetching its DID document failed", d)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return did.Undef, fmt.Errorf("resolving %s: its DID document answered %d", d, res.StatusCode)
	}
	var doc DIDDocument
	if err := json.NewDecoder(io.LimitReader(res.Body, maxDIDDocument)).Decode(&doc); err != nil {
		return did.Undef, fmt.Errorf("resolving %s: its DID document is not valid JSON", d)
	}
	if doc.ID != d.String() {
		return did.Undef, fmt.Errorf("resolving %s: its DID document is for %q", d, doc.ID)
	}
	for _, vm := range doc.VerificationMethod {
		if strings.HasPrefix(vm.PublicKeyMultibase, "z6Mk") {
			key, err := did.Parse("did:key:" + vm.PublicKeyMultibase)
			if err == nil {
				return key, nil
			}
		}
	}
	return did.Undef, fmt.Errorf("resolving %s: its DID document has no ed25519 key", d)
}

// DIDDocument is the subset of a W3C DID document egressd publishes and reads.
type DIDDocument struct {
	Context            []string             `json:"@context"`
	ID                 string               `json:"id"`
	VerificationMethod []VerificationMethod `json:"verificationMethod"`
	AssertionMethod    []string             `json:"assertionMethod"`
	Authentication     []string             `json:"authentication"`
}

// VerificationMethod is one key of a DID document.
type VerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

// NewDIDDocument describes a did:web identity backed by an ed25519 did:key.
func NewDIDDocument(id, key did.DID) DIDDocument {
	method := id.String() + "#owner"
	return DIDDocument{
		Context: []string{"https://w3id.org/did/v1"},
		ID:      id.String(),
		VerificationMethod: []VerificationMethod{{
			ID:                 method,
			Type:               "Ed25519VerificationKey2020",
			Controller:         id.String(),
			PublicKeyMultibase: strings.TrimPrefix(key.String(), "did:key:"),
		}},
		AssertionMethod: []string{method},
		Authentication:  []string{method},
	}
}

// didNames writes DIDs as strings, remembering the answers: the string of a
// did:key is the base58 of its bytes, computed afresh by every String call,
// and each delegation of a chain names the same few principals.
type didNames struct {
	cache *lru.Cache[string, string]
}

// didNameCacheSize bounds the names kept, by their bytes.
const didNameCacheSize = 4096

func newDIDNames() *didNames {
	c, err := lru.New[string, string](didNameCacheSize)
	if err != nil {
		panic(err) // only a non-positive size fails
	}
	return &didNames{cache: c}
}

// name is d.String().
func (n *didNames) name(d did.DID) string {
	key := string(d.Bytes())
	if s, ok := n.cache.Get(key); ok {
		return s
	}
	s := d.String()
	n.cache.Add(key, s)
	return s
}
