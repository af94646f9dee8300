package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/ucan"
	"github.com/storacha/go-ucanto/ucan/crypto/signature"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
)

// rawCAR builds a CAR of the given blocks, the first one its root, with
// correct CIDs: the shape of a message, whatever the blocks hold.
func rawCAR(t testing.TB, blocks ...[]byte) []byte {
	t.Helper()
	prefix := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}
	var ids []cid.Cid
	for _, b := range blocks {
		id, err := prefix.Sum(b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	header := []byte{0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x81, 0xd8, 0x2a, 0x58, byte(len(ids[0].Bytes()) + 1), 0x00}
	header = append(header, ids[0].Bytes()...)
	header = append(header, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01)
	var car bytes.Buffer
	car.Write(varint.ToUvarint(uint64(len(header))))
	car.Write(header)
	for i, b := range blocks {
		car.Write(varint.ToUvarint(uint64(len(ids[i].Bytes()) + len(b))))
		car.Write(ids[i].Bytes())
		car.Write(b)
	}
	return car.Bytes()
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/vnd.ipld.car", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

// TestDeeplyNestedBlockIsRefusedBeforeDecoding: a block of lists nested
// 2.4 million deep used to overflow the goroutine stack while decoding (a
// crash no recover() catches). It is now refused while the CAR is read.
func TestDeeplyNestedBlockIsRefusedBeforeDecoding(t *testing.T) {
	// Blocks as large as the body, so that depth alone is what refuses them.
	h := newHarness(t, func(c *server.Config) { c.Wire.MaxBlockBytes = 8 << 20 })
	for _, depth := range []int{33, 1000, 2_400_000} {
		deep := append(bytes.Repeat([]byte{0x81}, depth), 0x01)
		status, body := post(t, h.http.URL, rawCAR(t, deep))
		if status != http.StatusBadRequest || !strings.Contains(body, "NonCanonicalBlock") || !strings.Contains(body, "nested deeper than") {
			t.Fatalf("depth %d: %d %s", depth, status, body)
		}
	}
	// Nesting inside a signed invocation (its facts, decoded as "any") is
	// where the old decoder overflowed its stack; it is refused the same way.
	space := h.provision(alice)
	inv := recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now())
	_, invBlock := messageBlocks(t, inv)
	item := parseCBOR(t, invBlock)
	deep := append(append([]byte{0x81, 0xa1, 0x63, 'p', 'a', 'd'}, bytes.Repeat([]byte{0x81}, 2_400_000)...), 0x01)
	item.arg++
	item.children = append(item.children, cborItem{major: 3, arg: 3, payload: []byte("fct")}, cborItem{major: 7, simple: deep})
	var withFacts bytes.Buffer
	item.write(&withFacts, func() int { return 0 })
	status, rcpt := h.postVariant(nil, variant{name: "deep fct", data: withFacts.Bytes()})
	if status != http.StatusBadRequest {
		t.Fatalf("deep facts: status %d %v", status, rcpt)
	}
	if h.depth() != 0 {
		t.Fatalf("queue depth %d, want 0", h.depth())
	}
	if res, err := http.Get(h.http.URL + "/healthz"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("server unwell after the attack: %v %v", res, err)
	}
}

func encodeMapNode(t *testing.T, n datamodel.Node, key string, value datamodel.Node) []byte {
	t.Helper()
	return encodeNode(t, func(ma datamodel.MapAssembler) {
		for it := n.MapIterator(); !it.Done(); {
			k, v, _ := it.Next()
			ks, _ := k.AsString()
			if ks == key {
				continue
			}
			ma.AssembleKey().AssignString(ks)
			ma.AssembleValue().AssignNode(v)
		}
		ma.AssembleKey().AssignString(key)
		ma.AssembleValue().AssignNode(value)
	})
}

// attestCaveats are the caveats of ucan/attest: {proof: link}.
type attestCaveats struct{ proof ipld.Link }

func (c attestCaveats) ToIPLD() (datamodel.Node, error) {
	return qp.BuildMap(basicnode.Prototype.Any, 1, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "proof", qp.Link(c.proof))
	})
}

// TestAttestationsCannotMakeValidationExplode: k ucan/attest proofs issued
// by a did:web made the validator's search grow like k! (k=9 took about 20 s
// of CPU for a 5 KB request). Every delegation checked now spends a step of
// a per-invocation budget; past it the invocation fails at once. Since only
// the service's own attestations are honoured (onlyOwnAttestations), these
// are refused before the search even starts: Unauthorized, at once.
func TestAttestationsCannotMakeValidationExplode(t *testing.T) {
	for _, k := range []int{9, 30} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			h := newHarness(t, nil)
			space := h.provision(alice)
			inv := attestationInvocation(t, h, space, k)
			rcpt := h.ucantoExecute(inv)[0]
			mustFail(t, rcpt, "Unauthorized")
			if h.depth() != 0 {
				t.Fatalf("queue depth %d, want 0", h.depth())
			}
		})
	}
}

// attestationInvocation is the attack: the space delegates to a did:web,
// which delegates on to a gateway and attaches k attestations it issued
// itself; the gateway records.
func attestationInvocation(t testing.TB, h *harness, space principal.Signer, k int) invocation.Invocation {
	t.Helper()
	evil := wrap(t, newKey(t), "did:web:evil.example")
	gateway := newKey(t)
	toEvil := delegate(t, space, evil.DID(), []string{"space/content/serve/*"}, time.Time{})
	toGateway, err := delegation.Delegate(evil, gateway,
		[]ucan.Capability[ucan.CaveatBuilder]{newCapability("space/content/serve/*", space.DID().String())},
		delegation.WithProof(delegation.FromDelegation(toEvil)))
	if err != nil {
		t.Fatal(err)
	}
	proofs := []delegation.Delegation{toGateway}
	for i := range k {
		attest, err := delegation.Delegate(evil, gateway,
			[]ucan.Capability[ucan.CaveatBuilder]{ucan.NewCapability[ucan.CaveatBuilder]("ucan/attest", h.service.DID().String(),
				attestCaveats{proof: resourceLink(t, fmt.Sprint(i))})})
		if err != nil {
			t.Fatal(err)
		}
		proofs = append(proofs, attest)
	}
	return recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), proofs...)
}

// TestBytesPerEventIsBounded: 2^63-1 bytes was accepted and turned the
// month's total into a REAL. One event now carries at most
// --max-bytes-per-event (1 TiB by default).
func TestBytesPerEventIsBounded(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	for _, c := range []struct {
		bytes int64
		ok    bool
	}{{server.DefaultMaxBytesPerEvent, true}, {server.DefaultMaxBytesPerEvent + 1, false}, {1<<63 - 1, false}} {
		rcpt := h.ucantoExecute(recordFrom(t, space, h.service.DID(), capabilities.EgressRecord, space.DID(), c.bytes, time.Now()))[0]
		if c.ok {
			mustOK(t, rcpt)
		} else {
			mustFail(t, rcpt, "BytesOutOfRange")
		}
	}
	if h.depth() != 1 {
		t.Fatalf("queue depth %d, want 1", h.depth())
	}
}

// TestDeclaredBodyOverLimitIsRefusedAtOnce: a Content-Length past
// --max-body-bytes used to wait for the read timeout; it is 413 before a
// byte of the body is read.
func TestDeclaredBodyOverLimitIsRefusedAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 999999999999\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := readLine(conn)
	if err != nil || !strings.Contains(line, "413") {
		t.Fatalf("status line %q, %v; want 413 without sending the body", line, err)
	}
}

func readLine(conn net.Conn) (string, error) {
	var out []byte
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			return string(out), err
		}
		if b[0] == '\n' {
			return string(out), nil
		}
		out = append(out, b[0])
	}
}

// TestInflightBudgetAnswers503WhenFull: while the in-flight budget is held
// by bodies still arriving, another request waits AdmissionWait and is
// answered 503 with Retry-After instead of adding to memory. A body holds
// only the bytes it has sent: connections that send headers and then
// nothing hold none (the review's "two idle connections" lock-out): room
// for a body is taken once its first bytes arrive, and from then on it
// must arrive within two seconds and a second per 4 MiB.
func TestInflightBudgetAnswers503WhenFull(t *testing.T) {
	h := newHarness(t, func(c *server.Config) {
		c.MaxInflightBytes = 1000
		c.AdmissionWait = 100 * time.Millisecond
	})
	// Idle connections first: headers, then nothing.
	for range 8 {
		idle, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		fmt.Fprintf(idle, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nTransfer-Encoding: chunked\r\n\r\n")
	}
	time.Sleep(100 * time.Millisecond)
	if status, body := post(t, h.http.URL, []byte("x")); status != http.StatusBadRequest {
		t.Fatalf("with idle connections open: %d %s, want 400 (the budget is free)", status, body)
	}
	// A slow client declares 5000 bytes and sends 1000: it holds the budget.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 5000\r\n\r\n%s", strings.Repeat("0", 1000))
	var res *http.Response
	for range 50 { // until the slow request has been admitted
		res, err = http.Post(h.http.URL, "application/vnd.ipld.car", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Once the slow client goes, the budget is free again.
	conn.Close()
	for range 50 {
		res, err = http.Post(h.http.URL, "application/vnd.ipld.car", strings.NewReader("x"))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusBadRequest {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("budget not released: last status %d", res.StatusCode)
}

// TestAbandonedRepliesLeaveNothingBehind: the reply is encoded by a
// goroutine writing into a pipe; a client that hung up mid-reply used to
// leave that goroutine blocked for ever, holding every block of the reply.
func TestAbandonedRepliesLeaveNothingBehind(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	pad := strings.Repeat("p", 7800)
	before := runtime.NumGoroutine()
	for round := range 5 {
		var invs []invocation.Invocation
		for i := range 200 {
			inv, err := capabilities.EgressRecordCapability.Invoke(space, h.service.DID(), space.DID().String(),
				capabilities.RecordCaveats{Resource: resourceLink(t, fmt.Sprint(round, i)), Bytes: 1, ServedAt: time.Now().UnixMilli()},
				delegation.WithNonce(fmt.Sprint(round, i, pad)), delegation.WithNoExpiration())
			if err != nil {
				t.Fatal(err)
			}
			invs = append(invs, inv)
		}
		body, err := client.EncodeMessage(invs)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: %d\r\n\r\n", len(body))
		conn.Write(body)
		readLine(conn) // the status line: the reply has started
		conn.Close()   // and is abandoned
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Fatalf("%d goroutines after 5 abandoned replies, %d before: reply encoders are stuck", n, before)
	}
}

// TestRepeatedProofsCannotAmplifyDecoding (found in review): an invocation
// listing one 60 KB proof block 32 times, and a message listing that
// invocation 100 times, made a 66 KB body cost 13.7 s of decoding before
// any signature was checked. Repeated invocations are read once, each
// delegation is decoded once per message, and the bytes the proof walks
// visit are bounded by the message's size: past it, 413.
func TestRepeatedProofsCannotAmplifyDecoding(t *testing.T) {
	h := newHarness(t, nil)
	space := h.provision(alice)
	prefix := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}
	block := func(build func(ma datamodel.MapAssembler)) ([]byte, cidlink.Link) {
		data := encodeNode(t, build)
		id, _ := prefix.Sum(data)
		return data, cidlink.Link{Cid: id}
	}
	ucanBlock := func(nbInts int, prf []cidlink.Link) ([]byte, cidlink.Link) {
		return block(func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "v", qp.String("0.9.1"))
			qp.MapEntry(ma, "s", qp.Bytes(signature.NewSignature(signature.EdDSA, make([]byte, 64)).Bytes()))
			qp.MapEntry(ma, "iss", qp.Bytes(space.DID().Bytes()))
			qp.MapEntry(ma, "aud", qp.Bytes(h.service.DID().Bytes()))
			qp.MapEntry(ma, "exp", qp.Null())
			qp.MapEntry(ma, "att", qp.List(1, func(la datamodel.ListAssembler) {
				qp.ListEntry(la, qp.Map(3, func(cm datamodel.MapAssembler) {
					qp.MapEntry(cm, "with", qp.String(space.DID().String()))
					qp.MapEntry(cm, "can", qp.String(capabilities.EgressRecord))
					qp.MapEntry(cm, "nb", qp.List(int64(nbInts), func(nl datamodel.ListAssembler) {
						for i := range nbInts {
							qp.ListEntry(nl, qp.Int(int64(i%24)))
						}
					}))
				}))
			}))
			qp.MapEntry(ma, "prf", qp.List(int64(len(prf)), func(pl datamodel.ListAssembler) {
				for _, l := range prf {
					qp.ListEntry(pl, qp.Link(l))
				}
			}))
		})
	}
	big, bigLink := ucanBlock(60000, nil)
	prf := make([]cidlink.Link, 32)
	for i := range prf {
		prf[i] = bigLink
	}
	inv, invLink := ucanBlock(0, prf)
	for _, repeats := range []int{1, 100} {
		root, _ := block(func(ma datamodel.MapAssembler) {
			qp.MapEntry(ma, "ucanto/message@7.0.0", qp.Map(1, func(inner datamodel.MapAssembler) {
				qp.MapEntry(inner, "execute", qp.List(int64(repeats), func(l datamodel.ListAssembler) {
					for range repeats {
						qp.ListEntry(l, qp.Link(invLink))
					}
				}))
			}))
		})
		status, body := post(t, h.http.URL, rawCAR(t, root, inv, big))
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "MessageLimitExceeded") {
			t.Fatalf("%d repeats: %d %s, want 413 MessageLimitExceeded", repeats, status, body)
		}
	}
	if h.depth() != 0 {
		t.Fatalf("queue depth %d, want 0", h.depth())
	}
}

// TestTricklingBodyLosesItsRoom: a client that declares a body, sends a
// byte and stalls holds its room in the budget only until the body's
// deadline (2 s for a small body), then the room is free again.
func TestTricklingBodyLosesItsRoom(t *testing.T) {
	h := newHarness(t, func(c *server.Config) {
		c.MaxInflightBytes = 1000
		c.AdmissionWait = 100 * time.Millisecond
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 1000\r\n\r\n0")
	time.Sleep(200 * time.Millisecond)
	if status, _ := post(t, h.http.URL, []byte("x")); status != http.StatusServiceUnavailable {
		t.Fatalf("while the trickler holds the budget: %d, want 503", status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if status, _ := post(t, h.http.URL, []byte("x")); status == http.StatusBadRequest {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the trickling body kept its room past its deadline")
}

// TestValidationStepBudgetIsEnforced: whatever the shape of the proofs, an
// invocation whose validation would check more delegations than
// MaxValidationSteps fails with ValidationLimitExceeded and records nothing.
// (The attestation explosion above is now refused earlier, so the budget is
// exercised here with an ordinary chain and a budget set below it.)
func TestValidationStepBudgetIsEnforced(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.MaxValidationSteps = 1 })
	space := h.provision(alice)
	gw1, gw2 := newKey(t), newKey(t)
	first := delegate(t, space, gw1.DID(), []string{"space/content/serve/*"}, time.Time{})
	dlg, err := delegation.Delegate(gw1, gw2,
		[]ucan.Capability[ucan.CaveatBuilder]{newCapability("space/content/serve/*", space.DID().String())},
		delegation.WithNoExpiration(), delegation.WithProof(delegation.FromDelegation(first)))
	if err != nil {
		t.Fatal(err)
	}
	inv := recordFrom(t, gw2, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg)
	mustFail(t, h.ucantoExecute(inv)[0], "ValidationLimitExceeded")
	if h.depth() != 0 {
		t.Fatalf("queue depth %d, want 0", h.depth())
	}
}
