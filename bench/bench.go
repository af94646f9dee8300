// Package bench is egressd's load generator: it pre-signs record invocations
// the way a gateway makes them (a gateway key holding a delegation from the
// space), sends them at a chosen concurrency and batch size, checks every
// receipt, and reports throughput and latency. Signing happens before the
// clock starts, so the figures measure the server.
package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/message"
	"github.com/storacha/go-ucanto/core/result"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"

	"github.com/egressd/egressd/client"
)

// Config describes one load run.
type Config struct {
	URL string
	// Service is the DID invocations are addressed to.
	Service did.DID
	// ServiceKey is the did:key receipts must be signed with.
	ServiceKey did.DID
	// Spaces are provisioned spaces to record egress for, round-robin.
	Spaces []principal.Signer
	// Gateway invokes with a delegation from each space.
	Gateway     principal.Signer
	N           int
	Concurrency int
	// Batch is the number of invocations per request.
	Batch int
	// Can is the capability to invoke (default egress record).
	Can string
}

// Result is what a run measured.
type Result struct {
	Invocations int
	Requests    int
	// Failures counts invocations without a verified ok receipt, and
	// requests that failed as a whole count all their invocations.
	Failures      int
	FirstFailure  string
	Elapsed       time.Duration
	P50, P99, Max time.Duration
}

// PerSecond is the throughput in invocations per second.
func (r Result) PerSecond() float64 { return float64(r.Invocations) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%d invocations in %d requests in %.2fs: %.0f invocations/s, latency p50 %.1fms p99 %.1fms max %.1fms, %d failures",
		r.Invocations, r.Requests, r.Elapsed.Seconds(), r.PerSecond(),
		ms(r.P50), ms(r.P99), ms(r.Max), r.Failures)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// request is one pre-encoded message and what it carries.
type request struct {
	body []byte
	invs []invocation.Invocation
}

// Prepare signs and encodes cfg.N invocations into requests of cfg.Batch.
func Prepare(cfg Config) ([]request, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	proofs := make([]delegation.Delegation, len(cfg.Spaces))
	for i, s := range cfg.Spaces {
		dlg, err := client.Delegate(s, cfg.Gateway, []string{"space/content/serve/*", "usage/*"}, time.Time{})
		if err != nil {
			return nil, err
		}
		proofs[i] = dlg
	}
	var reqs []request
	now := time.Now()
	for start := 0; start < cfg.N; start += cfg.Batch {
		var invs []invocation.Invocation
		for i := start; i < min(start+cfg.Batch, cfg.N); i++ {
			space := cfg.Spaces[i%len(cfg.Spaces)]
			mh, _ := multihash.Sum(fmt.Appendf(nil, "bench-%d-%d", now.UnixNano(), i), multihash.SHA2_256, -1)
			inv, err := client.Invoke(cfg.Gateway, cfg.Service, client.Record{
				Can: cfg.Can, Space: space.DID(), Resource: cidlink.Link{Cid: cid.NewCidV1(cid.Raw, mh)},
				Bytes: int64(1000 + i), ServedAt: now,
			}, proofs[i%len(proofs)])
			if err != nil {
				return nil, err
			}
			invs = append(invs, inv)
		}
		body, err := client.EncodeMessage(invs)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, request{body, invs})
	}
	return reqs, nil
}

// Run sends the prepared requests with cfg.Concurrency clients, reading
// every reply, then (the clock stopped) decodes the replies and checks every
// receipt: an ok outcome signed by the service key.
func Run(ctx context.Context, cfg Config, reqs []request) Result {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	cl := client.New(cfg.URL)
	cl.HTTP.Transport = transport(cfg.Concurrency)
	// Replies are read while the clock runs and decoded after it stops, so
	// the load tool's own decoding does not take cores from the server.
	replies := make([][]byte, len(reqs))
	errs := make([]error, len(reqs))
	latencies := make([]time.Duration, len(reqs))

	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				replies[i], errs[i] = cl.PostRaw(ctx, reqs[i].body)
				latencies[i] = time.Since(t0)
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Requests: len(reqs)}

	for i, r := range reqs {
		res.Invocations += len(r.invs)
		if errs[i] != nil {
			res.fail(len(r.invs), errs[i].Error())
			continue
		}
		reply, err := client.DecodeReply(replies[i])
		replies[i] = nil
		if err != nil {
			res.fail(len(r.invs), err.Error())
			continue
		}
		for _, inv := range r.invs {
			res.check(reply, inv, cfg)
		}
	}
	slices.Sort(latencies)
	res.P50 = latencies[len(latencies)/2]
	res.P99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	res.Max = latencies[len(latencies)-1]
	return res
}

func (r *Result) fail(n int, why string) {
	r.Failures += n
	if r.FirstFailure == "" {
		r.FirstFailure = why
	}
}

func (r *Result) check(reply message.AgentMessage, inv invocation.Invocation, cfg Config) {
	rcpt, err := client.ReceiptFor(reply, inv.Link())
	if err != nil {
		r.fail(1, err.Error())
		return
	}
	if ok, _ := result.Unwrap(rcpt.Out()); ok == nil {
		name, msg := client.OutcomeFailure(rcpt)
		r.fail(1, name+": "+msg)
		return
	}
	if verified, err := client.Verify(rcpt, cfg.Service, cfg.ServiceKey); err != nil || !verified {
		r.fail(1, fmt.Sprintf("receipt signature does not verify (%v)", err))
	}
}
