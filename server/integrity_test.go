package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
	"github.com/egressd/egressd/server/wire"
)

// variant is one re-encoding of a signed invocation's block: the same
// signed content in other bytes, or the same bytes under another CID.
type variant struct {
	name string
	data []byte
	// prefix names the block; nil is CIDv1 DAG-CBOR SHA2-256.
	prefix *cid.Prefix
}

// TestReencodedInvocationIsBilledOnce replays one signed invocation in every
// encoding the attack used and in many generated ones. Each must be refused
// or answered with the original receipt: one queued event in the end.
func TestReencodedInvocationIsBilledOnce(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "gateway"
		if direct {
			name = "space directly (no proofs)"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			space := h.provision(alice)
			issuer, proofs := space, []delegation.Delegation(nil)
			if !direct {
				issuer = newKey(t)
				proofs = append(proofs, delegate(t, space, issuer.DID(), []string{"space/content/serve/*"}, time.Time{}))
			}
			inv := recordFrom(t, issuer, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), proofs...)
			original := mustOK(t, h.ucantoExecute(inv)[0])
			if h.depth() != 1 {
				t.Fatalf("queue depth %d after the original, want 1", h.depth())
			}
			others, invBlock := messageBlocks(t, inv)

			// The original bytes are the control: they must come back with
			// the original receipt, or the message building below is wrong.
			if status, rcpt := h.postVariant(others, variant{name: "original", data: invBlock}); status != http.StatusOK ||
				linkField(t, mustOK(t, rcpt), "cause") != linkField(t, original, "cause") {
				t.Fatalf("the original bytes were not answered with the original receipt (status %d)", status)
			}
			variants := handmadeVariants(t, invBlock)
			rng := rand.New(rand.NewPCG(1, uint64(len(invBlock))))
			for i := range 200 {
				variants = append(variants, variant{name: fmt.Sprintf("generated-%d", i), data: widen(t, invBlock, rng)})
			}
			accepted := 0
			for _, v := range variants {
				status, rcpt := h.postVariant(others, v)
				if testing.Verbose() {
					failure := ""
					if rcpt != nil {
						failure, _ = client.OutcomeFailure(rcpt)
					}
					t.Logf("%s: status %d %s", v.name, status, failure)
				}
				switch {
				case status == http.StatusBadRequest:
				case status != http.StatusOK:
					t.Fatalf("%s: status %d", v.name, status)
				case rcpt == nil:
					t.Fatalf("%s: no receipt", v.name)
				default:
					if ok, _ := client.OutcomeFailure(rcpt); ok == "" {
						accepted++
						if got := linkField(t, mustOK(t, rcpt), "cause"); got != linkField(t, original, "cause") {
							t.Fatalf("%s: accepted as a new invocation %s", v.name, got)
						}
					}
				}
				if h.depth() != 1 {
					t.Fatalf("%s: queue depth %d, want 1: billed twice", v.name, h.depth())
				}
			}
			t.Logf("%d variants: %d answered with the original receipt, the rest refused", len(variants), accepted)
		})
	}
}

// handmadeVariants are the re-encodings the attack used, by name.
func handmadeVariants(t *testing.T, block []byte) []variant {
	t.Helper()
	sha512 := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_512, MhLength: -1}
	raw := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}
	identity := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.IDENTITY, MhLength: -1}
	n := decodeMap(t, block)
	out := []variant{
		{name: "same bytes, sha2-512 CID", data: block, prefix: &sha512},
		{name: "same bytes, raw codec CID", data: block, prefix: &raw},
		{name: "same bytes, identity CID", data: block, prefix: &identity},
		{name: "every head widened", data: widenAll(t, block)},
		{name: "map keys reversed", data: reverseKeys(t, block)},
		{name: "iss as a generic DID", data: encodeMap(t, n, "iss", genericDID(t, mapBytes(t, n, "iss")))},
		{name: "aud as a generic DID", data: encodeMap(t, n, "aud", genericDID(t, mapBytes(t, n, "aud")))},
		{name: "signature with a trailing byte", data: encodeMap(t, n, "s", append(mapBytes(t, n, "s"), 0))},
	}
	// "fct" absent and "fct": [] sign the same payload (found in review).
	out = append(out, variant{name: "fct: [] added", data: encodeMap(t, n, "fct", []ipld.Link{})})
	// Without proofs, "prf" absent and "prf": [] sign the same payload.
	if prf, err := n.LookupByString("prf"); err != nil {
		out = append(out, variant{name: "prf: [] added", data: encodeMap(t, n, "prf", []ipld.Link{})})
	} else if prf.Length() == 0 {
		out = append(out, variant{name: "prf: [] left out", data: encodeMap(t, n, "prf", nil)})
	}
	return out
}

// messageBlocks returns the invocation's block and the message's other
// blocks (its proofs), as the Go client encodes them.
func messageBlocks(t testing.TB, inv invocation.Invocation) (others []ipld.Block, invBlock []byte) {
	t.Helper()
	body, err := client.EncodeMessage([]invocation.Invocation{inv})
	if err != nil {
		t.Fatal(err)
	}
	root, blocks, err := wire.Read(body, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		switch b.Link().String() {
		case inv.Link().String():
			invBlock = b.Bytes()
		case root.String():
		default:
			others = append(others, b)
		}
	}
	return others, invBlock
}

// variantMessage is a CAR agent message whose one invocation is v, with
// the other blocks; it returns the message and the invocation's link.
func variantMessage(t testing.TB, others []ipld.Block, v variant) ([]byte, ipld.Link) {
	t.Helper()
	prefix := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}
	if v.prefix != nil {
		prefix = *v.prefix
	}
	id, err := prefix.Sum(v.data)
	if err != nil {
		t.Fatal(err)
	}
	link := cidlink.Link{Cid: id}
	rootData := encodeNode(t, func(ma datamodel.MapAssembler) {
		ma.AssembleKey().AssignString("ucanto/message@7.0.0")
		inner, _ := ma.AssembleValue().BeginMap(1)
		inner.AssembleKey().AssignString("execute")
		list, _ := inner.AssembleValue().BeginList(1)
		list.AssembleValue().AssignLink(link)
		list.Finish()
		inner.Finish()
	})
	rootID, _ := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}.Sum(rootData)
	header := encodeNode(t, func(ma datamodel.MapAssembler) {
		ma.AssembleKey().AssignString("roots")
		list, _ := ma.AssembleValue().BeginList(1)
		list.AssembleValue().AssignLink(cidlink.Link{Cid: rootID})
		list.Finish()
		ma.AssembleKey().AssignString("version")
		ma.AssembleValue().AssignInt(1)
	})
	var car bytes.Buffer
	section := func(parts ...[]byte) {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		car.Write(varint.ToUvarint(uint64(n)))
		for _, p := range parts {
			car.Write(p)
		}
	}
	section(header)
	section(rootID.Bytes(), rootData)
	section(id.Bytes(), v.data)
	for _, b := range others {
		section([]byte(b.Link().Binary()), b.Bytes())
	}
	return car.Bytes(), link
}

// postVariant sends variantMessage(others, v) and returns the HTTP status
// and the invocation's receipt.
func (h *harness) postVariant(others []ipld.Block, v variant) (int, receipt.AnyReceipt) {
	h.t.Helper()
	body, link := variantMessage(h.t, others, v)
	res, err := http.Post(h.http.URL, "application/vnd.ipld.car", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	var reply bytes.Buffer
	reply.ReadFrom(res.Body)
	msg, err := client.DecodeReply(reply.Bytes())
	if err != nil {
		h.t.Fatalf("%s: %v", v.name, err)
	}
	rcpt, err := client.ReceiptFor(msg, link)
	if err != nil {
		h.t.Fatalf("%s: %v", v.name, err)
	}
	return res.StatusCode, rcpt
}

func decodeMap(t testing.TB, data []byte) datamodel.Node {
	t.Helper()
	nb := basicnode.Prototype.Map.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return nb.Build()
}

func mapBytes(t *testing.T, n datamodel.Node, key string) []byte {
	t.Helper()
	v, err := n.LookupByString(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// genericDID writes a did:key in the generic DID form (0x0d1d + "key:z..."),
// which go-ucanto decodes to the same DID string.
func genericDID(t *testing.T, keyBytes []byte) []byte {
	t.Helper()
	d, err := did.Decode(keyBytes)
	if err != nil {
		t.Fatal(err)
	}
	return append(varint.ToUvarint(did.DIDCore), strings.TrimPrefix(d.String(), "did:")...)
}

// encodeMap re-encodes the map n (canonically) with key set to value, or
// left out when value is nil.
func encodeMap(t *testing.T, n datamodel.Node, key string, value any) []byte {
	t.Helper()
	return encodeNode(t, func(ma datamodel.MapAssembler) {
		set := false
		for it := n.MapIterator(); !it.Done(); {
			k, v, _ := it.Next()
			ks, _ := k.AsString()
			if ks == key {
				set = true
				if value != nil {
					ma.AssembleKey().AssignString(ks)
					assign(t, ma.AssembleValue(), value)
				}
				continue
			}
			ma.AssembleKey().AssignString(ks)
			ma.AssembleValue().AssignNode(v)
		}
		if !set {
			ma.AssembleKey().AssignString(key)
			assign(t, ma.AssembleValue(), value)
		}
	})
}

func assign(t *testing.T, na datamodel.NodeAssembler, value any) {
	switch v := value.(type) {
	case []byte:
		na.AssignBytes(v)
	case []ipld.Link:
		la, _ := na.BeginList(int64(len(v)))
		for _, l := range v {
			la.AssembleValue().AssignLink(l)
		}
		la.Finish()
	default:
		t.Fatalf("cannot assign %T", value)
	}
}

func encodeNode(t testing.TB, build func(datamodel.MapAssembler)) []byte {
	t.Helper()
	nb := basicnode.Prototype.Map.NewBuilder()
	ma, _ := nb.BeginMap(-1)
	build(ma)
	if err := ma.Finish(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(nb.Build(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cborItem is a parsed CBOR item of a (trusted, canonical) test block,
// kept as its head and its children so it can be written back differently.
type cborItem struct {
	major    byte
	arg      uint64
	payload  []byte // bytes and text
	children []cborItem
	simple   []byte // major 7: the raw item
}

func parseCBOR(t testing.TB, data []byte) cborItem {
	t.Helper()
	item, rest, err := parseItem(data)
	if err != nil || len(rest) != 0 {
		t.Fatalf("parsing test block: %v", err)
	}
	return item
}

func parseItem(data []byte) (cborItem, []byte, error) {
	if len(data) == 0 {
		return cborItem{}, nil, errors.New("truncated")
	}
	major, info := data[0]>>5, data[0]&0x1f
	if major == 7 {
		size := map[byte]int{20: 1, 21: 1, 22: 1, 27: 9}[info]
		return cborItem{major: 7, simple: data[:size]}, data[size:], nil
	}
	arg, n := uint64(info), 1
	switch info {
	case 24:
		arg, n = uint64(data[1]), 2
	case 25:
		arg, n = uint64(binary.BigEndian.Uint16(data[1:])), 3
	case 26:
		arg, n = uint64(binary.BigEndian.Uint32(data[1:])), 5
	case 27:
		arg, n = binary.BigEndian.Uint64(data[1:]), 9
	}
	item, rest := cborItem{major: major, arg: arg}, data[n:]
	switch major {
	case 2, 3:
		item.payload, rest = rest[:arg], rest[arg:]
	case 4, 5, 6:
		count := arg
		if major == 5 {
			count *= 2
		}
		if major == 6 {
			count = 1
		}
		for range count {
			child, r, err := parseItem(rest)
			if err != nil {
				return item, nil, err
			}
			item.children, rest = append(item.children, child), r
		}
	}
	return item, rest, nil
}

// write encodes item, choosing each head's width with size (1, 2, 3, 5 or 9
// bytes; 0 is the shortest form).
func (item cborItem) write(buf *bytes.Buffer, size func() int) {
	if item.major == 7 {
		buf.Write(item.simple)
		return
	}
	width := size()
	shortest := 1
	switch {
	case item.arg >= 1<<32:
		shortest = 9
	case item.arg >= 1<<16:
		shortest = 5
	case item.arg >= 1<<8:
		shortest = 3
	case item.arg >= 24:
		shortest = 2
	}
	width = max(width, shortest)
	head := item.major << 5
	switch width {
	case 1:
		buf.WriteByte(head | byte(item.arg))
	case 2:
		buf.Write([]byte{head | 24, byte(item.arg)})
	case 3:
		buf.WriteByte(head | 25)
		binary.Write(buf, binary.BigEndian, uint16(item.arg))
	case 5:
		buf.WriteByte(head | 26)
		binary.Write(buf, binary.BigEndian, uint32(item.arg))
	default:
		buf.WriteByte(head | 27)
		binary.Write(buf, binary.BigEndian, item.arg)
	}
	buf.Write(item.payload)
	for _, c := range item.children {
		c.write(buf, size)
	}
}

// widen re-encodes block with some heads (integers, lengths, counts, tags)
// widened at random: the same value, other bytes.
func widen(t *testing.T, block []byte, rng *rand.Rand) []byte {
	t.Helper()
	var buf bytes.Buffer
	widths := []int{0, 0, 0, 0, 2, 3, 5, 9}
	parseCBOR(t, block).write(&buf, func() int { return widths[rng.IntN(len(widths))] })
	if bytes.Equal(buf.Bytes(), block) {
		buf.Reset()
		parseCBOR(t, block).write(&buf, func() int { return 9 })
	}
	return buf.Bytes()
}

func widenAll(t *testing.T, block []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	parseCBOR(t, block).write(&buf, func() int { return 9 })
	return buf.Bytes()
}

// reverseKeys writes the top-level map's entries in reverse order.
func reverseKeys(t *testing.T, block []byte) []byte {
	t.Helper()
	item := parseCBOR(t, block)
	var pairs [][2]cborItem
	for i := 0; i < len(item.children); i += 2 {
		pairs = append(pairs, [2]cborItem{item.children[i], item.children[i+1]})
	}
	item.children = nil
	for i := len(pairs) - 1; i >= 0; i-- {
		item.children = append(item.children, pairs[i][0], pairs[i][1])
	}
	var buf bytes.Buffer
	item.write(&buf, func() int { return 0 })
	return buf.Bytes()
}

// barrierJournal holds every Record until two have arrived: two replicas
// recording at the same moment, each having looked for the other's receipt
// before either was stored.
type barrierJournal struct {
	server.Journal
	arrived chan struct{}
}

func (j *barrierJournal) Record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error {
	j.arrived <- struct{}{}
	deadline := time.After(5 * time.Second)
	for len(j.arrived) < cap(j.arrived) {
		select {
		case <-deadline:
			return j.Journal.Record(ctx, events, rcpts)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return j.Journal.Record(ctx, events, rcpts)
}

// TestTwinsOnTwoReplicasAreOneEvent (found in review): the two encodings
// of a proof-less invocation, sent at the same moment to two replicas that
// share their stores, both miss each other's receipt; they must still be
// one event for the ledger, which dedups on the cause.
func TestTwinsOnTwoReplicasAreOneEvent(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	inv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now())
	_, invBlock := messageBlocks(t, inv)
	twin := handmadeVariants(t, invBlock)[len(handmadeVariants(t, invBlock))-1]
	if !strings.HasPrefix(twin.name, "prf") {
		t.Fatalf("no prf twin among the variants (last is %q)", twin.name)
	}
	journal := &barrierJournal{Journal: h.journal, arrived: make(chan struct{}, 2)}
	var urls []string
	for range 2 {
		replica, err := server.New(server.Config{Signer: h.service, Customers: h.customers, Queue: h.queue, Receipts: h.receipts, Journal: journal})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(replica)
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	bodies := []variant{{name: "original", data: invBlock}, twin}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			body, _ := variantMessage(t, nil, bodies[i])
			res, err := http.Post(urls[i], "application/vnd.ipld.car", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s: status %d", bodies[i].name, res.StatusCode)
			}
		})
	}
	wg.Wait()
	msgs, err := h.queue.Receive(context.Background(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	causes := map[string]bool{}
	for _, m := range msgs {
		causes[m.Event.Cause] = true
	}
	if len(causes) != 1 {
		t.Fatalf("%d events with causes %v: the two encodings are two events for the ledger", len(msgs), causes)
	}
}
