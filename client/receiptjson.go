package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	edverifier "github.com/storacha/go-ucanto/principal/ed25519/verifier"
	"github.com/storacha/go-ucanto/principal/verifier"
)

// ReceiptView is a receipt as people read it: the outcome as DAG-JSON (links
// as {"/": cid}), with what it is a receipt for and who signed it.
type ReceiptView struct {
	Receipt    string          `json:"receipt"`
	Invocation string          `json:"invocation"`
	Issuer     string          `json:"issuer"`
	Ok         json.RawMessage `json:"ok,omitempty"`
	Error      json.RawMessage `json:"error,omitempty"`
	// Verified is set when the signature was checked against the service key.
	Verified *bool `json:"verified,omitempty"`
}

// View renders a receipt.
func View(rcpt receipt.AnyReceipt) (ReceiptView, error) {
	v := ReceiptView{
		Receipt:    rcpt.Root().Link().String(),
		Invocation: rcpt.Ran().Link().String(),
	}
	if rcpt.Issuer() != nil {
		v.Issuer = rcpt.Issuer().DID().String()
	}
	okNode, errNode := result.Unwrap(rcpt.Out())
	var err error
	if okNode != nil {
		v.Ok, err = nodeJSON(okNode)
	} else {
		v.Error, err = nodeJSON(errNode)
	}
	return v, err
}

// OutcomeFailure returns the failure name and message of a receipt, or "" for a success.
func OutcomeFailure(rcpt receipt.AnyReceipt) (name, message string) {
	_, errNode := result.Unwrap(rcpt.Out())
	if errNode == nil {
		return "", ""
	}
	if n, err := errNode.LookupByString("name"); err == nil {
		name, _ = n.AsString()
	}
	if m, err := errNode.LookupByString("message"); err == nil {
		message, _ = m.AsString()
	}
	if name == "" {
		name = "Error"
	}
	return name, message
}

func nodeJSON(n ipld.Node) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := dagjson.Encode(n, &buf); err != nil {
		return nil, fmt.Errorf("rendering receipt outcome: %w", err)
	}
	return buf.Bytes(), nil
}

// Verify checks that rcpt was signed by the service. serviceKey is the
// service's did:key; serviceDID its public DID (the same, or a did:web).
func Verify(rcpt receipt.AnyReceipt, serviceDID, serviceKey did.DID) (bool, error) {
	key, err := edverifier.Parse(serviceKey.String())
	if err != nil {
		return false, fmt.Errorf("service key: %w", err)
	}
	var v principal.Verifier = key
	if serviceDID != serviceKey {
		if v, err = verifier.Wrap(key, serviceDID); err != nil {
			return false, err
		}
	}
	if rcpt.Issuer() == nil || rcpt.Issuer().DID() != serviceDID {
		return false, nil
	}
	return rcpt.VerifySignature(v)
}

// ServiceKey finds the did:key behind the service's DID: the DID itself for
// a did:key, otherwise the key in the service's /.well-known/did.json.
func (c *Client) ServiceKey(ctx context.Context, serviceDID did.DID) (did.DID, error) {
	if strings.HasPrefix(serviceDID.String(), "did:key:") {
		return serviceDID, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/.well-known/did.json", nil)
	if err != nil {
		return did.Undef, err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return did.Undef, fmt.Errorf("fetching the service's DID document: %w", err)
	}
	defer res.Body.Close()
	var doc struct {
		ID                 string `json:"id"`
		VerificationMethod []struct {
			PublicKeyMultibase string `json:"publicKeyMultibase"`
		} `json:"verificationMethod"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil || doc.ID != serviceDID.String() || len(doc.VerificationMethod) == 0 {
		return did.Undef, fmt.Errorf("the service's DID document does not describe %s", serviceDID)
	}
	return did.Parse("did:key:" + doc.VerificationMethod[0].PublicKeyMultibase)
}
