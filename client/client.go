// Package client is the gateway side of egressd in Go: it builds and signs
// record invocations, sends them as ucanto agent messages, fetches receipts
// and renders them as JSON. The CLI, the tests and the load tool use it.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/storacha/go-ucanto/core/car"
	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/message"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan"

	"github.com/egressd/egressd/capabilities"
)

// Record describes one served response to record.
type Record struct {
	// Can is the capability name; empty is capabilities.EgressRecord.
	Can      string
	Space    did.DID
	Resource ipld.Link
	Bytes    int64
	// ServedAt is sent in milliseconds for EgressRecord and seconds for UsageRecord.
	ServedAt time.Time
}

// Invoke signs a record invocation from issuer to the service, carrying
// proofs, with a random nonce and no expiration (as Freeway sends them).
func Invoke(issuer principal.Signer, service ucan.Principal, rec Record, proofs ...delegation.Delegation) (invocation.IssuedInvocation, error) {
	can := rec.Can
	if can == "" {
		can = capabilities.EgressRecord
	}
	parser, ok := capabilities.RecordParsers[can]
	if !ok {
		return nil, fmt.Errorf("unknown capability %q", can)
	}
	servedAt := rec.ServedAt.UnixMilli()
	if can == capabilities.UsageRecord {
		servedAt = rec.ServedAt.Unix()
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	opts := []delegation.Option{delegation.WithNonce(hex.EncodeToString(nonce)), delegation.WithNoExpiration()}
	if len(proofs) > 0 {
		prfs := make([]delegation.Proof, len(proofs))
		for i, p := range proofs {
			prfs[i] = delegation.FromDelegation(p)
		}
		opts = append(opts, delegation.WithProof(prfs...))
	}
	return parser.Invoke(issuer, service, rec.Space.String(),
		capabilities.RecordCaveats{Resource: rec.Resource, Bytes: rec.Bytes, ServedAt: servedAt}, opts...)
}

// Delegate lets the space grant audience (a gateway) the given abilities on
// the space, for example "space/content/serve/*" or "usage/record". A zero
// expiration never expires.
func Delegate(space principal.Signer, audience ucan.Principal, abilities []string, expiration time.Time) (delegation.Delegation, error) {
	caps := make([]ucan.Capability[ucan.CaveatBuilder], len(abilities))
	for i, a := range abilities {
		caps[i] = ucan.NewCapability[ucan.CaveatBuilder](a, space.DID().String(), ucan.NoCaveats{})
	}
	opts := []delegation.Option{delegation.WithNoExpiration()}
	if !expiration.IsZero() {
		opts = []delegation.Option{delegation.WithExpiration(int(expiration.Unix()))}
	}
	return delegation.Delegate(space, audience, caps, opts...)
}

// Client talks to one egressd over HTTP.
type Client struct {
	// URL is the service's base URL, for example http://127.0.0.1:8080.
	URL  string
	HTTP *http.Client
}

// New returns a client for the service at url.
func New(url string) *Client {
	return &Client{URL: strings.TrimSuffix(url, "/"), HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// EncodeMessage builds the CAR body of an agent message holding invs.
func EncodeMessage(invs []invocation.Invocation) ([]byte, error) {
	msg, err := message.Build(invs, nil)
	if err != nil {
		return nil, fmt.Errorf("building message: %w", err)
	}
	return io.ReadAll(car.Encode([]ipld.Link{msg.Root().Link()}, msg.Blocks()))
}

// Execute sends invs in one agent message and returns one receipt per
// invocation, in the same order.
func (c *Client) Execute(ctx context.Context, invs ...invocation.Invocation) ([]receipt.AnyReceipt, error) {
	body, err := EncodeMessage(invs)
	if err != nil {
		return nil, err
	}
	msg, err := c.ExecuteRaw(ctx, body)
	if err != nil {
		return nil, err
	}
	rcpts := make([]receipt.AnyReceipt, len(invs))
	for i, inv := range invs {
		if rcpts[i], err = ReceiptFor(msg, inv.Link()); err != nil {
			return nil, err
		}
	}
	return rcpts, nil
}

// ExecuteRaw posts an already encoded message and returns the reply message
// (the load tool pre-encodes so it measures the server, not the client).
func (c *Client) ExecuteRaw(ctx context.Context, body []byte) (message.AgentMessage, error) {
	reply, err := c.PostRaw(ctx, body)
	if err != nil {
		return nil, err
	}
	return DecodeReply(reply)
}

// PostRaw sends an encoded agent message and returns the reply's bytes
// undecoded, for a load generator that decodes replies once its clock has
// stopped. A status other than 200 is a *StatusError.
func (c *Client) PostRaw(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", car.ContentType)
	req.Header.Set("Accept", car.ContentType)
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sending invocations: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, statusError(res)
	}
	reply, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("reading reply: %w", err)
	}
	return reply, nil
}

// DecodeReply reads the agent message PostRaw returned.
func DecodeReply(reply []byte) (message.AgentMessage, error) {
	return decodeMessage(bytes.NewReader(reply))
}

// ReceiptFor finds the receipt of inv in a reply message.
func ReceiptFor(msg message.AgentMessage, inv ipld.Link) (receipt.AnyReceipt, error) {
	link, ok := msg.Get(inv)
	if !ok {
		return nil, fmt.Errorf("reply has no receipt for invocation %s", inv)
	}
	rcpt, ok, err := msg.Receipt(link)
	if err != nil || !ok {
		return nil, fmt.Errorf("reply's receipt for invocation %s cannot be read: %v", inv, err)
	}
	return rcpt, nil
}

// Receipt fetches the receipt of an invocation (or by receipt CID).
func (c *Client) Receipt(ctx context.Context, cid string) (receipt.AnyReceipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/receipt/"+cid, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching receipt: %w", err)
	}
	defer res.Body.Close()
	msg, err := decodeReply(res)
	if err != nil {
		return nil, err
	}
	links := msg.Receipts()
	if len(links) != 1 {
		return nil, fmt.Errorf("reply holds %d receipts, expected 1", len(links))
	}
	rcpt, _, err := msg.Receipt(links[0])
	return rcpt, err
}

// Info fetches GET /: the service DID and what it serves.
func (c *Client) Info(ctx context.Context) (ServiceInfo, error) {
	var info ServiceInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/", nil)
	if err != nil {
		return info, err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return info, fmt.Errorf("asking the service who it is: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return info, fmt.Errorf("asking the service who it is: HTTP %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
		return info, fmt.Errorf("asking the service who it is: %w", err)
	}
	return info, nil
}

// ServiceInfo is the answer of GET /.
type ServiceInfo struct {
	DID          string   `json:"did"`
	Aliases      []string `json:"aliases"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities"`
}

// StatusError is an HTTP-level failure: the message was refused as a whole.
type StatusError struct {
	Status  int
	Name    string `json:"name"`
	Message string `json:"message"`
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Name, e.Message)
}

func decodeReply(res *http.Response) (message.AgentMessage, error) {
	if res.StatusCode != http.StatusOK {
		return nil, statusError(res)
	}
	return decodeMessage(res.Body)
}

// statusError reads the JSON error body of a failed request.
func statusError(res *http.Response) *StatusError {
	se := &StatusError{Status: res.StatusCode}
	json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(se)
	return se
}

func decodeMessage(r io.Reader) (message.AgentMessage, error) {
	roots, blocks, err := car.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("decoding reply: %w", err)
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("decoding reply: %d roots, expected 1", len(roots))
	}
	bs, err := blockstore.NewBlockReader(blockstore.WithBlocksIterator(blocks))
	if err != nil {
		return nil, fmt.Errorf("decoding reply: %w", err)
	}
	return message.NewMessage(roots[0], bs)
}
