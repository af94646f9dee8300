package main_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/embedded"
)

// TestAcknowledgedEventsSurviveSIGKILL kills the server with SIGKILL while
// clients are recording, restarts it, and checks that every invocation that
// got an ok receipt still has its receipt and its queued event.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	data := t.TempDir()
	// No in-process billing worker: it would take the events off the queue
	// this test inspects.
	srv := startServe(t, data, "--worker=false")
	serviceDID, _ := did.Parse(strings.TrimSpace(run(t, "id", "--data-dir", data)))

	space, _ := signer.Generate()
	run(t, "provision", "--data-dir", data, "--space", space.DID().String(), "--customer", "did:mailto:example.com:alice")

	var (
		mu    sync.Mutex
		acked []string
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := client.New(srv.URL)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				mh, _ := multihash.Sum([]byte{byte(w), byte(i), byte(i >> 8)}, multihash.SHA2_256, -1)
				inv, err := client.Invoke(space, serviceDID, client.Record{
					Space: space.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 100, ServedAt: time.Now(),
				})
				if err != nil {
					t.Error(err)
					return
				}
				rcpts, err := cl.Execute(ctx, inv)
				if err != nil {
					return // the server died mid-request: this one was not acknowledged
				}
				if ok, _ := result.Unwrap(rcpts[0].Out()); ok != nil {
					mu.Lock()
					acked = append(acked, inv.Link().String())
					mu.Unlock()
				}
			}
		}()
	}
	// Let some requests through, then pull the plug mid-flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.kill()
	cancel()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no invocation was acknowledged before the kill")
	}

	// Every acknowledged event is on the queue.
	journal, err := embedded.Open(context.Background(), data, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := journal.Queue
	queued := map[string]bool{}
	for {
		msgs, err := q.Receive(context.Background(), 500, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			queued[m.Event.Cause] = true
		}
	}
	journal.Close()
	for _, c := range acked {
		if !queued[c] {
			t.Fatalf("acknowledged invocation %s has no queued event after SIGKILL", c)
		}
	}

	// And every acknowledged receipt is served after a restart.
	srv = startServe(t, data)
	cl = client.New(srv.URL)
	for _, c := range acked {
		if _, err := cl.Receipt(context.Background(), c); err != nil {
			t.Fatalf("receipt of acknowledged invocation %s lost after SIGKILL: %v", c, err)
		}
	}
	t.Logf("%d acknowledged invocations survived SIGKILL; %d events queued", len(acked), len(queued))
}
