//go:build seedgen

package server_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ipldprime "github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/storacha/go-ucanto/core/invocation"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// TestWriteFuzzSeeds regenerates the committed fuzz corpora; it is built only
// with the seedgen tag: go test -tags seedgen -run WriteFuzzSeeds ./server
func TestWriteFuzzSeeds(t *testing.T) {
	h := newHarness(t, nil)
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	var bodies [][]byte
	for _, n := range []int{1, 3} {
		var invs []invocation.Invocation
		for i := range n {
			invs = append(invs, recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), int64(i+1), time.Now(), dlg))
		}
		b, err := client.EncodeMessage(invs)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	one := bodies[0]
	seeds := map[string][]byte{
		"valid-1":     one,
		"valid-3":     bodies[1],
		"truncated":   one[:len(one)/2],
		"header-only": one[:40],
		"empty":       {},
		"garbage":     []byte("not a car at all"),
	}
	for i := 0; i < 8; i++ {
		flipped := append([]byte(nil), one...)
		flipped[(i*97+11)%len(flipped)] ^= 0xff
		seeds[fmt.Sprintf("bitflip-%d", i)] = flipped
	}
	// The attacks of the integrity review: lists nested far past any limit,
	// inside a block and inside an invocation's facts, and a chain of
	// ucan/attest proofs that made validation factorial.
	seeds["deep-block"] = rawCAR(t, append(bytes.Repeat([]byte{0x81}, 20_000), 0x01))
	inv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 1, time.Now())
	_, invBlock := messageBlocks(t, inv)
	item := parseCBOR(t, invBlock)
	item.arg++
	item.children = append(item.children, cborItem{major: 3, arg: 3, payload: []byte("fct")},
		cborItem{major: 7, simple: append(append([]byte{0x81, 0xa1, 0x63, 'p', 'a', 'd'}, bytes.Repeat([]byte{0x81}, 20_000)...), 0x01)})
	var deepFacts bytes.Buffer
	item.write(&deepFacts, func() int { return 0 })
	seeds["deep-facts"], _ = variantMessage(t, nil, variant{name: "deep facts", data: deepFacts.Bytes()})
	var err error
	seeds["attestations-9"], err = client.EncodeMessage([]invocation.Invocation{attestationInvocation(t, h, space, 9)})
	if err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/fuzz/FuzzInvoke", seeds)

	caveats := map[string][]byte{}
	for name, c := range map[string]capabilities.RecordCaveats{
		"valid":         {Resource: resourceLink(t, "x"), Bytes: 10, ServedAt: time.Now().UnixMilli()},
		"zero-bytes":    {Resource: resourceLink(t, "x"), Bytes: 0, ServedAt: 1},
		"negative-time": {Resource: resourceLink(t, "x"), Bytes: 1, ServedAt: -1},
	} {
		n, err := c.ToIPLD()
		if err != nil {
			t.Fatal(err)
		}
		b, err := ipldprime.Encode(n, dagcbor.Encode)
		if err != nil {
			t.Fatal(err)
		}
		caveats[name] = b
	}
	caveats["empty-map"] = []byte{0xa0}
	caveats["string-bytes"] = []byte{0xa1, 0x65, 'b', 'y', 't', 'e', 's', 0x61, 'x'}
	write(t, "../capabilities/testdata/fuzz/FuzzReadCaveats", caveats)
}

func write(t *testing.T, dir string, seeds map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
