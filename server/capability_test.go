package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/storacha/go-ucanto/core/ipld"
	ucschema "github.com/storacha/go-ucanto/core/schema"
	"github.com/storacha/go-ucanto/validator"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/server"
)

// A toy capability, echo/say, defined here the way a new one is in
// capabilities/: a schema, caveats, a success value and a parser.
var echoTypes, _ = ipldprime.LoadSchemaBytes([]byte(`
type EchoCaveats struct { say String }
type EchoOK struct { said String }
`))

type echoCaveats struct {
	Say string `json:"say"`
}

func (c echoCaveats) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&c, echoTypes.TypeByName("EchoCaveats"))
}

type echoOK struct{ Said string }

func (o echoOK) ToIPLD() (ipld.Node, error) {
	return ipld.WrapWithRecovery(&o, echoTypes.TypeByName("EchoOK"))
}

var (
	echoReader = ucschema.Struct[echoCaveats](echoTypes.TypeByName("EchoCaveats"), nil)
	echoParser = validator.NewCapability("echo/say", ucschema.DIDString(), echoReader, validator.DefaultDerives[echoCaveats])
)

func readEcho(nb any) (echoCaveats, error) {
	c, f := echoReader.Read(nb)
	if f != nil {
		return c, f
	}
	if c.Say == "" {
		return c, fmt.Errorf("say: expected something to say")
	}
	return c, nil
}

// TestRegisteredCapabilityIsServed: one Definition in Config.Capabilities
// makes a capability invocable end to end, through validation and a signed
// receipt, and listed by GET /.
func TestRegisteredCapabilityIsServed(t *testing.T) {
	echo := &server.Definition[echoCaveats]{
		Parsers:     []validator.CapabilityParser[echoCaveats]{echoParser},
		ReadCaveats: readEcho,
		Handler: server.HandlerFunc[echoCaveats](func(ctx context.Context, req server.Request[echoCaveats]) (server.Result, error) {
			if req.Capability.Nb().Say == "fail" {
				return server.Fail(capabilities.Failure{FailureName: "EchoRefused", Message: "will not say that"}), nil
			}
			return server.OK(echoOK{Said: req.Capability.With() + " says " + req.Capability.Nb().Say}), nil
		}),
	}
	h := newHarness(t, func(c *server.Config) { c.Capabilities = []server.Capability{echo} })
	space := newKey(t)

	invoke := func(say string) ipld.Node {
		inv, err := echoParser.Invoke(space, h.service.DID(), space.DID().String(), echoCaveats{Say: say})
		if err != nil {
			t.Fatal(err)
		}
		rcpt := h.ucantoExecute(inv)[0]
		switch say {
		case "hello":
			return mustOK(t, rcpt)
		case "fail":
			mustFail(t, rcpt, "EchoRefused")
		case "":
			mustFail(t, rcpt, "MalformedCapability")
		}
		return nil
	}
	if got, want := stringField(t, invoke("hello"), "said"), space.DID().String()+" says hello"; got != want {
		t.Errorf("said %q, want %q", got, want)
	}
	invoke("fail")
	invoke("")
	// Validated like the built-in ones: addressed elsewhere, it is refused.
	inv, err := echoParser.Invoke(space, newKey(t).DID(), space.DID().String(), echoCaveats{Say: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, h.ucantoExecute(inv)[0], "InvalidAudience")
	if h.depth() != 0 {
		t.Errorf("queue depth %d, want 0: echo/say queues no event", h.depth())
	}

	info, err := h.client.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{capabilities.UsageRecord, capabilities.EgressRecord, "echo/say"}
	if !slices.Equal(info.Capabilities, want) {
		t.Errorf("GET / capabilities = %v, want %v", info.Capabilities, want)
	}
}

// TestCapabilityServedTwiceIsRefused: two registrations of one name are a
// configuration error, not a silent override.
func TestCapabilityServedTwiceIsRefused(t *testing.T) {
	again := &server.Definition[capabilities.RecordCaveats]{
		Parsers:     []validator.CapabilityParser[capabilities.RecordCaveats]{capabilities.Record},
		ReadCaveats: capabilities.ReadCaveats,
		Handler:     &server.RecordService{},
	}
	h := newHarness(t, nil)
	cfg := server.Config{Signer: newKey(t), Customers: h.customers, Queue: h.queue, Receipts: h.receipts,
		Capabilities: []server.Capability{again}}
	if _, err := server.New(cfg); err == nil {
		t.Fatal("New accepted usage/record twice")
	}
}
