package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	wrapped "github.com/storacha/go-ucanto/principal/signer"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// The gateway-side commands: what a gateway operator runs to get a delegation
// and to try the service by hand.

// defaultDelegationExpiration is how long `egressd delegate` makes a
// delegation valid unless told otherwise: one year.
const defaultDelegationExpiration = 365 * 24 * time.Hour

func delegateCommand() *ffcli.Command {
	var (
		spaceKey, audience string
		abilities          stringList
		expiration         time.Duration
	)
	fs := flag.NewFlagSet("delegate", flag.ContinueOnError)
	fs.StringVar(&spaceKey, "space-key", "", "the space's private key (Mg...) (required)")
	fs.StringVar(&audience, "audience", "", "the gateway DID receiving the delegation (did:key or did:web) (required)")
	fs.Var(&abilities, "can", "ability to delegate (repeatable); default: space/content/serve/* and usage/record")
	// A year by default: a delegation that never expires stays good until it
	// is revoked, and a lost gateway key should not be good forever.
	fs.DurationVar(&expiration, "expiration", defaultDelegationExpiration, "how long the delegation is valid, from now; 0 never expires")
	return command("delegate",
		"egressd delegate --space-key Mg... --audience did:web:gateway.example [--can ABILITY] [--expiration 8760h]",
		"let a gateway record egress for a space: prints the delegation (base64)", fs,
		func(ctx context.Context, args []string) error {
			space, err := parseKey(spaceKey, "--space-key")
			if err != nil {
				return err
			}
			aud, err := did.Parse(audience)
			if err != nil {
				return fmt.Errorf("--audience %q is not a DID", audience)
			}
			if len(abilities) == 0 {
				abilities = stringList{"space/content/serve/*", capabilities.UsageRecord}
			}
			var exp time.Time
			if expiration > 0 {
				exp = time.Now().Add(expiration)
			}
			dlg, err := client.Delegate(space, aud, abilities, exp)
			if err != nil {
				return fmt.Errorf("delegating: %w", err)
			}
			out, err := delegation.Format(dlg)
			if err != nil {
				return err
			}
			fmt.Println(out)
			return nil
		})
}

func recordCommand() *ffcli.Command {
	var (
		url, key, gatewayDID, proof, space, resource, can, service string
		bytes                                                      int64
		servedAt, save, resend                                     string
	)
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.StringVar(&url, "url", "http://127.0.0.1:8080", "egressd URL")
	fs.StringVar(&key, "key", "", "the invoker's key (Mg...): the gateway's, or the space's own (required)")
	fs.StringVar(&gatewayDID, "did", "", "the gateway's did:web, when it signs under one (the service must map or resolve it)")
	fs.StringVar(&proof, "proof", "", "delegation from the space (what egressd delegate prints); omit when --key is the space's key")
	fs.StringVar(&space, "space", "", "the space that served the content (did:key); default: the issuer of --proof, or --key's DID")
	fs.StringVar(&resource, "resource", "", "CID of the content served (required)")
	fs.Int64Var(&bytes, "bytes", 0, "bytes served (required, > 0)")
	fs.StringVar(&servedAt, "served-at", "", "when it was served: RFC 3339 or Unix seconds/milliseconds; default: now")
	fs.StringVar(&can, "can", capabilities.EgressRecord, "capability to invoke: "+capabilities.EgressRecord+" or "+capabilities.UsageRecord)
	fs.StringVar(&service, "service", "", "the service DID (audience); default: asked from the service")
	fs.StringVar(&save, "save", "", "also write the signed invocation to this new file (base64 CAR), to send it again with --resend")
	fs.StringVar(&resend, "resend", "", "send again the invocation --save wrote to this file, instead of signing a new one: the service answers with the same receipt and bills nothing twice (needs only --url)")
	return command("record",
		"egressd record --url URL --key Mg... [--proof DELEGATION] --resource CID --bytes N [--save FILE] [flags]\n  egressd record --url URL --resend FILE",
		"send one record invocation and print its receipt as JSON (exit 1 when the receipt is a failure)", fs,
		func(ctx context.Context, args []string) error {
			cl := client.New(url)
			if resend != "" {
				if save != "" {
					return flagError(fs, "--resend sends a saved invocation: --save has nothing new to write")
				}
				inv, err := readInvocation(resend)
				if err != nil {
					return err
				}
				serviceDID, err := serviceIdentity(ctx, cl, service)
				if err != nil {
					return err
				}
				return execute(ctx, cl, inv, serviceDID)
			}
			issuer, err := parseKey(key, "--key")
			if err != nil {
				return err
			}
			if gatewayDID != "" {
				id, err := did.Parse(gatewayDID)
				if err != nil {
					return fmt.Errorf("--did %q is not a DID", gatewayDID)
				}
				if issuer, err = wrapped.Wrap(issuer, id); err != nil {
					return err
				}
			}
			var proofs []delegation.Delegation
			if proof != "" {
				dlg, err := delegation.Parse(strings.TrimSpace(proof))
				if err != nil {
					return fmt.Errorf("--proof is not a delegation: %w", err)
				}
				proofs = append(proofs, dlg)
			}
			rec := client.Record{Can: can, Bytes: bytes}
			switch {
			case space != "":
				rec.Space, err = did.Parse(space)
			case len(proofs) > 0:
				rec.Space = proofs[0].Issuer().DID()
			default:
				rec.Space = issuer.DID()
			}
			if err != nil {
				return fmt.Errorf("--space %q is not a DID", space)
			}
			c, err := cid.Parse(resource)
			if err != nil {
				return fmt.Errorf("--resource %q is not a CID", resource)
			}
			rec.Resource = cidlink.Link{Cid: c}
			if rec.ServedAt, err = parseTime(servedAt); err != nil {
				return err
			}
			serviceDID, err := serviceIdentity(ctx, cl, service)
			if err != nil {
				return err
			}
			// Every invocation signed here has a fresh nonce, so running
			// record twice bills twice: --save keeps this one to resend.
			inv, err := client.Invoke(issuer, serviceDID, rec, proofs...)
			if err != nil {
				return err
			}
			if save != "" {
				if err := saveInvocation(save, inv); err != nil {
					return err
				}
			}
			return execute(ctx, cl, inv, serviceDID)
		})
}

// execute sends one invocation and prints its receipt; a receipt that
// carries a failure is an error, so a script sees a non-zero exit status.
func execute(ctx context.Context, cl *client.Client, inv invocation.Invocation, serviceDID did.DID) error {
	rcpts, err := cl.Execute(ctx, inv)
	if err != nil {
		return err
	}
	if err := printReceipt(ctx, cl, rcpts[0], serviceDID); err != nil {
		return err
	}
	if name, msg := client.OutcomeFailure(rcpts[0]); name != "" {
		return fmt.Errorf("the receipt is a failure: %s: %s", name, msg)
	}
	return nil
}

// saveInvocation writes inv to a new file in the form delegations travel
// in (base64 CAR). It never overwrites: that would lose the invocation an
// earlier --save kept for a resend.
func saveInvocation(path string, inv invocation.Invocation) error {
	text, err := delegation.Format(inv)
	if err != nil {
		return fmt.Errorf("--save: encoding the invocation: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--save: %w", err)
	}
	if _, err := f.WriteString(text + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("--save: %w", err)
	}
	return f.Close()
}

// readInvocation reads what saveInvocation wrote.
func readInvocation(path string) (invocation.Invocation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--resend: %w", err)
	}
	dlg, err := delegation.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--resend %s is not an invocation saved by record --save: %w", path, err)
	}
	return dlg, nil
}

func receiptCommand() *ffcli.Command {
	var url string
	fs := flag.NewFlagSet("receipt", flag.ContinueOnError)
	fs.StringVar(&url, "url", "http://127.0.0.1:8080", "egressd URL")
	return command("receipt", "egressd receipt --url URL CID",
		"fetch the receipt of an invocation (or by receipt CID) and print it as JSON", fs,
		func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("expected one CID, got %d arguments", len(args))
			}
			cl := client.New(url)
			rcpt, err := cl.Receipt(ctx, args[0])
			if err != nil {
				return err
			}
			serviceDID, err := serviceIdentity(ctx, cl, "")
			if err != nil {
				return err
			}
			return printReceipt(ctx, cl, rcpt, serviceDID)
		})
}

// printReceipt prints the receipt as JSON with whether its signature checks
// out against the service's key.
func printReceipt(ctx context.Context, cl *client.Client, rcpt receipt.AnyReceipt, serviceDID did.DID) error {
	view, err := client.View(rcpt)
	if err != nil {
		return err
	}
	if key, err := cl.ServiceKey(ctx, serviceDID); err == nil {
		ok, _ := client.Verify(rcpt, serviceDID, key)
		if !ok {
			ok = signedByAlias(ctx, cl, rcpt)
		}
		view.Verified = &ok
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(view)
}

// signedByAlias checks a receipt signed by one of the service's did:key
// aliases, as its receipts from before a key rotation are (the old DID is
// kept as --alias): its issuer is the key, and the service still answers to
// it.
func signedByAlias(ctx context.Context, cl *client.Client, rcpt receipt.AnyReceipt) bool {
	if rcpt.Issuer() == nil {
		return false
	}
	issuer := rcpt.Issuer().DID()
	if !strings.HasPrefix(issuer.String(), "did:key:") {
		return false
	}
	info, err := cl.Info(ctx)
	if err != nil || !slices.Contains(info.Aliases, issuer.String()) {
		return false
	}
	ok, _ := client.Verify(rcpt, issuer, issuer)
	return ok
}

func serviceIdentity(ctx context.Context, cl *client.Client, flagValue string) (did.DID, error) {
	if flagValue != "" {
		d, err := did.Parse(flagValue)
		if err != nil {
			return did.Undef, fmt.Errorf("--service %q is not a DID", flagValue)
		}
		return d, nil
	}
	info, err := cl.Info(ctx)
	if err != nil {
		return did.Undef, err
	}
	return did.Parse(info.DID)
}

func parseKey(s, name string) (principal.Signer, error) {
	if s == "" {
		return nil, fmt.Errorf("%s is required", name)
	}
	k, err := signer.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%s is not an ed25519 key in multibase (Mg...) form", name)
	}
	return k, nil
}

// parseTime reads RFC 3339 or Unix seconds/milliseconds; empty is now.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return capabilities.RecordCaveats{ServedAt: n}.ServedTime(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--served-at %q: expected RFC 3339 or Unix seconds or milliseconds", s)
	}
	return t, nil
}
