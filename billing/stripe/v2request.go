package stripe

import (
	"bytes"
	"context"
	"fmt"
	"io"

	stripego "github.com/stripe/stripe-go/v81"
)

// maxV2Answer bounds the body read from a v2 answer: a session, an event or
// an error is a few kilobytes.
const maxV2Answer = 1 << 20

// v2Host sends JSON requests to the v2 API through one of stripe-go's
// backends (its URL, headers, HTTP client and error decoding), as stripe-go's
// rawrequest package does, except on a failed connection. There stripe-go
// v81's RawRequest reads the body of the response it did not get and panics
// (handleResponseBufferingErrors; stripe/stripe-go issue #2211, reported
// against v83.1.0 on a meter_event_stream timeout, the same code as v81.4.0),
// which would take the worker down on any network error or timeout; here the
// error comes back as an error.
type v2Host struct {
	b *stripego.BackendImplementation
}

// newV2Host builds the v2Host of a stripe-go backend.
func newV2Host(kind stripego.SupportedBackend, cfg *stripego.BackendConfig) (v2Host, error) {
	b, ok := stripego.GetBackendWithConfig(kind, cfg).(*stripego.BackendImplementation)
	if !ok {
		return v2Host{}, fmt.Errorf("stripe-go's %s backend is not a *stripe.BackendImplementation", kind)
	}
	return v2Host{b: b}, nil
}

// call sends method path with key as bearer and body (nil for none), and
// returns the answer's body; a Stripe error answer is a *stripe.Error.
func (h v2Host) call(ctx context.Context, method, path, key string, body []byte) ([]byte, error) {
	req, err := h.b.NewRequest(method, path, key, "application/json", &stripego.Params{Context: ctx})
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	res, err := h.b.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxV2Answer))
	if err != nil {
		return nil, fmt.Errorf("reading Stripe's answer: %w", err)
	}
	if res.StatusCode >= 400 {
		return nil, h.b.ResponseToError(res, data)
	}
	return data, nil
}
