package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/bench"
	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

func benchCommand() *ffcli.Command {
	var (
		backend                       backendFlags
		url, can, customer            string
		n, concurrency, batch, spaces int
		spaceKeys                     stringList
		worker                        bool
		customers                     int
		stripeLatency, window         time.Duration
		stripeAPI                     string
		serverPID                     int
		spacesFile                    string
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	backend.register(fs)
	fs.StringVar(&url, "url", "http://127.0.0.1:8080", "egressd URL to load")
	fs.IntVar(&n, "n", 2000, "invocations to send")
	fs.IntVar(&concurrency, "concurrency", 8, "concurrent clients")
	fs.IntVar(&batch, "batch", 1, "invocations per request")
	fs.IntVar(&spaces, "spaces", 10, "spaces to provision in --data-dir and spread the invocations over")
	fs.Var(&spaceKeys, "space-key", "key (Mg...) of an already provisioned space to use instead of provisioning (repeatable)")
	fs.StringVar(&spacesFile, "spaces-file", "", "JSON file of the spaces to use: read if it exists, else the provisioned spaces, provider and customer are written to it (for a peer server to load; --n 0 stops there)")
	fs.StringVar(&customer, "customer", "did:mailto:bench.example:load", "customer of the provisioned spaces")
	fs.StringVar(&can, "can", capabilities.EgressRecord, "capability to invoke")
	fs.IntVar(&serverPID, "server-pid", 0, "PID of the server under load, to sample its resident memory every second and its CPU time over the run (Linux)")
	fs.BoolVar(&worker, "worker", false, "drive the billing worker instead: queue --n events in a temporary data directory and report them to a local fake Stripe, rate limit off")
	fs.IntVar(&customers, "customers", 64, "with --worker: customers the events are spread over")
	fs.DurationVar(&stripeLatency, "stripe-latency", 0, "with --worker: delay of every fake Stripe answer")
	fs.StringVar(&stripeAPI, "stripe-api", "v1", "with --worker: Stripe meter event API, v1 or v2")
	fs.DurationVar(&window, "billing-window", billing.DefaultWindow, "with --worker: the worker's aggregation window on v1")
	return command("bench",
		"egressd bench --url URL --data-dir DIR [--n 2000] [--concurrency 8] [--batch 1] | egressd bench --worker [--n 20000] [--concurrency 32]",
		"load generator: pre-signed invocations against a server, or events through the billing worker", fs,
		func(ctx context.Context, args []string) error {
			if worker {
				return benchWorker(ctx, bench.WorkerConfig{N: n, Customers: customers, Concurrency: concurrency, StripeLatency: stripeLatency, API: stripeAPI, Window: window})
			}
			cl := client.New(url)
			info, err := cl.Info(ctx)
			if err != nil {
				return err
			}
			service, err := did.Parse(info.DID)
			if err != nil {
				return err
			}
			serviceKey, err := cl.ServiceKey(ctx, service)
			if err != nil {
				return err
			}
			cfg := bench.Config{URL: url, Service: service, ServiceKey: serviceKey, N: n, Concurrency: concurrency, Batch: batch, Can: can}
			if cfg.Spaces, err = benchSpacesFile(ctx, spacesFile, backend, spaceKeys, spaces, customer, service); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			if cfg.Gateway, err = signer.Generate(); err != nil {
				return err
			}
			fmt.Printf("signing %d invocations (%d per request)...\n", n, batch)
			reqs, err := bench.Prepare(cfg)
			if err != nil {
				return err
			}
			fmt.Printf("sending with %d concurrent clients to %s\n", concurrency, url)
			sampling, stopSampling := context.WithCancel(ctx)
			var rss *bench.RSS
			sampled := make(<-chan struct{})
			if serverPID > 0 {
				rss, sampled = bench.SampleRSS(sampling, serverPID, time.Second)
			}
			cpuBefore, cpuErr := bench.ProcessCPU(serverPID)
			res := bench.Run(ctx, cfg, reqs)
			cpuAfter, _ := bench.ProcessCPU(serverPID)
			stopSampling()
			fmt.Println(res)
			if rss != nil {
				<-sampled
				fmt.Println(rss)
			}
			floor, err := bench.MeasureFloor(2000)
			if err != nil {
				return err
			}
			fmt.Printf("cost floor, measured now: %s; this run used %.0fµs of wall time per invocation\n",
				floor, float64(res.Elapsed.Microseconds())/float64(max(1, res.Invocations)))
			// One line for scripts (bench.sh --peer builds its table from it).
			// cpu_us is -1 without a readable --server-pid.
			cpu := -1.0
			if serverPID > 0 && cpuErr == nil {
				cpu = float64((cpuAfter - cpuBefore).Microseconds()) / float64(max(1, res.Invocations))
				fmt.Printf("server CPU: %.0fµs per invocation, %.1f× the floor\n", cpu, cpu/us(floor.PerInvocation()))
			}
			fmt.Printf("result: rate=%.0f p50_ms=%.1f p99_ms=%.1f cpu_us=%.0f floor_us=%.0f failures=%d\n",
				res.PerSecond(), float64(res.P50.Microseconds())/1000, float64(res.P99.Microseconds())/1000, cpu, us(floor.PerInvocation()), res.Failures)
			if res.Failures > 0 {
				return fmt.Errorf("%d invocations failed; first: %s", res.Failures, res.FirstFailure)
			}
			return nil
		})
}

// spacesFile is what --spaces-file holds: the spaces a run uses, and what a
// peer server (bench/peer) needs to answer for them as egressd does. It holds
// the spaces' private keys, so that a later run can sign with them.
type spacesFile struct {
	Provider string       `json:"provider"`
	Customer string       `json:"customer"`
	Spaces   []spaceEntry `json:"spaces"`
}

type spaceEntry struct {
	DID string `json:"did"`
	Key string `json:"key"` // Mg..., as --space-key takes it
}

// benchSpacesFile reads the spaces from path when it exists; otherwise it
// provisions them (benchSpaces) and, given a path, writes them there.
func benchSpacesFile(ctx context.Context, path string, backend backendFlags, keys stringList, n int, customer string, provider did.DID) ([]principal.Signer, error) {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			var f spacesFile
			if err := json.Unmarshal(b, &f); err != nil {
				return nil, fmt.Errorf("--spaces-file %s: %w", path, err)
			}
			if f.Provider != provider.String() {
				return nil, fmt.Errorf("--spaces-file %s was provisioned under %s, the server is %s", path, f.Provider, provider)
			}
			var out []principal.Signer
			for _, s := range f.Spaces {
				k, err := parseKey(s.Key, "--spaces-file key")
				if err != nil {
					return nil, err
				}
				out = append(out, k)
			}
			return out, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	out, err := benchSpaces(ctx, backend, keys, n, customer, provider)
	if err != nil || path == "" {
		return out, err
	}
	f := spacesFile{Provider: provider.String(), Customer: customer}
	for _, s := range out {
		key, err := signer.Format(s)
		if err != nil {
			return nil, err
		}
		f.Spaces = append(f.Spaces, spaceEntry{s.DID().String(), key})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return out, os.WriteFile(path, b, 0o600)
}

// us is d in microseconds.
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// benchSpaces returns the given provisioned spaces, or provisions new ones
// in the customer store (--data-dir, or DynamoDB with --tables).
func benchSpaces(ctx context.Context, backend backendFlags, keys stringList, n int, customer string, provider did.DID) ([]principal.Signer, error) {
	var out []principal.Signer
	for _, k := range keys {
		s, err := parseKey(k, "--space-key")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) > 0 {
		return out, nil
	}
	if n <= 0 {
		return nil, errors.New("--spaces must be at least 1")
	}
	store, closeStore, err := backend.customerStore(ctx)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	for range n {
		s, err := signer.Generate()
		if err != nil {
			return nil, err
		}
		if err := store.Provision(ctx, s.DID().String(), customer, provider.String()); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// benchWorker drives the billing worker against a local fake Stripe.
func benchWorker(ctx context.Context, cfg bench.WorkerConfig) error {
	if cfg.API != "v1" && cfg.API != "v2" {
		return fmt.Errorf("--stripe-api %q: want v1 or v2", cfg.API)
	}
	dir, err := os.MkdirTemp("", "egressd-bench-worker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	fmt.Printf("queueing %d events for %d customers; Stripe %s, worker concurrency %d, fake Stripe latency %v\n", cfg.N, cfg.Customers, cfg.API, cfg.Concurrency, cfg.StripeLatency)
	res, err := bench.RunWorker(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(res)
	if !res.ExactlyOnce() {
		return fmt.Errorf("not exactly once: %d of %d events reported, value %d for %d bytes", res.Reported, res.Events, res.Value, res.Want)
	}
	return nil
}
