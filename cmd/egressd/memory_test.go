package main_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// TestSixteenLargeBodiesStayInsideTheMemoryBudget sends 16 messages of
// about 8 MiB at once, each a thousand valid invocations padded to 8 KB,
// and reads the server's peak resident memory (VmHWM). Before the in-flight
// budget, 16 such bodies at once peaked at 1.66 GB; now the bodies beyond
// the budget wait (or get 503 with Retry-After), and the peak stays near
// the 128 MiB soft limit serve sets for itself (measured: 174 MiB). The
// client closes each reply unread, as a hostile one would: that used to
// leave every reply's blocks behind in a stuck encoder goroutine.
func TestSixteenLargeBodiesStayInsideTheMemoryBudget(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data, "--worker=false", "--admission-wait", "2m", "--read-timeout", "5m")
	serviceDID, _ := did.Parse(strings.TrimSpace(run(t, "id", "--data-dir", data)))
	space, _ := signer.Generate()
	gateway, _ := signer.Generate()
	run(t, "provision", "--data-dir", data, "--space", space.DID().String(), "--customer", "did:mailto:example.com:alice")
	dlg, err := client.Delegate(space, gateway, []string{"space/content/serve/*"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	bodies := make([][]byte, 16)
	pad := strings.Repeat("p", 7800)
	for b := range bodies {
		var invs []invocation.Invocation
		for i := range 1000 {
			mh, _ := multihash.Sum([]byte(fmt.Sprint(b, i)), multihash.SHA2_256, -1)
			inv, err := capabilities.EgressRecordCapability.Invoke(gateway, serviceDID, space.DID().String(),
				capabilities.RecordCaveats{Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)}, Bytes: 100, ServedAt: time.Now().UnixMilli()},
				delegation.WithNonce(fmt.Sprintf("%d-%d-%s", b, i, pad)), delegation.WithNoExpiration(),
				delegation.WithProof(delegation.FromDelegation(dlg)))
			if err != nil {
				t.Fatal(err)
			}
			invs = append(invs, inv)
		}
		if bodies[b], err = client.EncodeMessage(invs); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("16 bodies of %.1f MiB", float64(len(bodies[0]))/(1<<20))

	var wg sync.WaitGroup
	statuses := make([]int, len(bodies))
	for i, body := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(srv.URL, "application/vnd.ipld.car", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		}()
	}
	wg.Wait()
	peak := peakRSS(t, srv.cmd.Process.Pid)
	t.Logf("statuses %v; peak RSS %d MiB", statuses, peak>>20)
	for i, s := range statuses {
		if s != http.StatusOK && s != http.StatusServiceUnavailable {
			t.Errorf("body %d: status %d", i, s)
		}
	}
	// 128 MiB is the soft limit; the slack covers the runtime, SQLite's
	// caches and the garbage collector's lag behind a burst.
	if limit := int64(224 << 20); peak > limit {
		t.Fatalf("peak RSS %d MiB, want at most %d MiB", peak>>20, limit>>20)
	}
}

// peakRSS reads a process's peak resident set size from /proc (Linux).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
