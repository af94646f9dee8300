package receipts_test

import (
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/core/receipt/ran"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/receipts"
	"github.com/egressd/egressd/receipts/receiptstest"
)

// The archive must read back as the same receipt, invocation and proofs
// included, as go-ucanto's own archive does.
func TestArchiveReadsBackLikeUcantosOwn(t *testing.T) {
	service, _ := signer.Generate()
	space, _ := signer.Generate()
	gateway, _ := signer.Generate()
	dlg, err := client.Delegate(space, gateway, []string{"space/content/serve/*"}, timeZero)
	if err != nil {
		t.Fatal(err)
	}
	mh, _ := multihash.Sum([]byte("x"), multihash.SHA2_256, -1)
	inv, err := client.Invoke(gateway, service, client.Record{Space: space.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 5, ServedAt: now}, dlg)
	if err != nil {
		t.Fatal(err)
	}
	ok := capabilities.NewRecordOK(space.DID().String(), capabilities.RecordCaveats{Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 5, ServedAt: 1}, inv.Link())
	rcpt, err := receipt.Issue(service, result.Ok[capabilities.RecordOK, capabilities.Failure](ok), ran.FromInvocation(inv))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := receipts.Archive(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := io.ReadAll(rcpt.Archive())
	for name, archive := range map[string][]byte{"ours": ours, "go-ucanto's": theirs} {
		got, err := receipt.Extract(archive)
		if err != nil {
			t.Fatalf("%s archive: %v", name, err)
		}
		if got.Root().Link().String() != rcpt.Root().Link().String() {
			t.Fatalf("%s archive holds receipt %s, want %s", name, got.Root().Link(), rcpt.Root().Link())
		}
		readInv, ok := got.Ran().Invocation()
		if !ok || len(readInv.Proofs()) != 1 {
			t.Fatalf("%s archive lost the invocation or its proof", name)
		}
		if ok, err := client.Verify(got, service.DID(), service.DID()); err != nil || !ok {
			t.Fatalf("%s archive's receipt does not verify: %v", name, err)
		}
	}
}

var (
	timeZero = time.Time{}
	now      = time.Now()
)

func TestInvocationIsWhatTheReceiptRan(t *testing.T) {
	for range 3 {
		r := receiptstest.NewReceipt(t)
		got, err := receipts.Invocation(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := r.Ran().Link().String(); got != want {
			t.Fatalf("Invocation() = %s, want %s", got, want)
		}
	}
}
