package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/did"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
)

// The customer-side commands: an operator grants a customer's agent the
// right to read its account, and the agent reads it.

func accountCommand() *ffcli.Command {
	root := command("account", "egressd account grant|egress [flags]",
		"let a customer's agent read its account over UCAN, and read it",
		flag.NewFlagSet("account", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{accountGrantCommand(), accountEgressCommand()}
	return root
}

func accountGrantCommand() *ffcli.Command {
	var (
		backend                      backendFlags
		key, didWeb, customer, agent string
		abilities                    stringList
		expiration                   time.Duration
	)
	fs := flag.NewFlagSet("account grant", flag.ContinueOnError)
	backend.registerDataDir(fs)
	fs.StringVar(&key, "key", "", "service key (Mg...); default: the key in the data directory")
	fs.StringVar(&didWeb, "did", "", "the service's did:web, when it serves under one (as serve --did)")
	fs.StringVar(&customer, "customer", "", "the customer's account, did:mailto:... (required)")
	fs.StringVar(&agent, "audience", "", "the agent's DID, did:key:... (required)")
	fs.Var(&abilities, "can", "ability to grant (repeatable): "+capabilities.AccountEgressGet+" (default) or "+capabilities.AccountEgressAll)
	fs.DurationVar(&expiration, "expiration", defaultDelegationExpiration, "how long the grant is valid, from now; 0 never expires")
	return command("grant",
		"egressd account grant --customer did:mailto:... --audience did:key:... [--expiration 8760h]",
		"print the proofs an agent attaches to act for an account: the account's delegation, then the service's ucan/attest of it (one per line)", fs,
		func(ctx context.Context, args []string) error {
			account, err := did.Parse(customer)
			if err != nil || !strings.HasPrefix(customer, "did:mailto:") {
				return fmt.Errorf("--customer %q: expected a did:mailto: account", customer)
			}
			aud, err := did.Parse(agent)
			if err != nil {
				return fmt.Errorf("--audience %q is not a DID", agent)
			}
			for _, a := range abilities {
				if a != capabilities.AccountEgressGet && a != capabilities.AccountEgressAll {
					return fmt.Errorf("--can %q: expected %s or %s", a, capabilities.AccountEgressGet, capabilities.AccountEgressAll)
				}
			}
			service, _, err := loadSigner(backend.dataDir, key, didWeb, false)
			if err != nil {
				return err
			}
			var exp time.Time
			if expiration > 0 {
				exp = time.Now().Add(expiration)
			}
			grant, err := client.GrantAccount(service, account, aud, abilities, exp)
			if err != nil {
				return err
			}
			for _, dlg := range grant.Proofs() {
				out, err := delegation.Format(dlg)
				if err != nil {
					return err
				}
				fmt.Println(out)
			}
			return nil
		})
}

func accountEgressCommand() *ffcli.Command {
	var (
		url, key, service, customer, from, to string
		proofs, spaces                        stringList
	)
	fs := flag.NewFlagSet("account egress", flag.ContinueOnError)
	fs.StringVar(&url, "url", "http://127.0.0.1:8080", "egressd URL")
	fs.StringVar(&key, "key", "", "the agent's key (Mg...) (required)")
	fs.Var(&proofs, "proof", "a proof line printed by `egressd account grant` (repeat for each line, or give a file of them with @FILE)")
	fs.StringVar(&customer, "customer", "", "the account, did:mailto:...; default: the one the proofs are about")
	fs.Var(&spaces, "space", "a space to report (repeatable); default: every space of the account")
	fs.StringVar(&from, "from", "", "first day, YYYY-MM-DD (with --to); default: the first day of last month")
	fs.StringVar(&to, "to", "", "the day after the last, YYYY-MM-DD (with --from); default: tomorrow")
	fs.StringVar(&service, "service", "", "the service DID (audience); default: asked from the service")
	return command("egress",
		"egressd account egress --url URL --key Mg... --proof LINE --proof LINE [--space did:key:...] [--from YYYY-MM-DD --to YYYY-MM-DD]",
		"ask account/egress/get for an account's egress per space and day; prints the result as JSON", fs,
		func(ctx context.Context, args []string) error {
			agent, err := parseKey(key, "--key")
			if err != nil {
				return err
			}
			dlgs, err := readProofs(proofs)
			if err != nil {
				return err
			}
			if customer == "" {
				for _, d := range dlgs {
					if c := d.Capabilities(); len(c) > 0 && strings.HasPrefix(c[0].With(), "did:mailto:") {
						customer = c[0].With()
						break
					}
				}
			}
			account, err := did.Parse(customer)
			if err != nil || !strings.HasPrefix(customer, "did:mailto:") {
				return fmt.Errorf("--customer %q: expected a did:mailto: account (or proofs naming one)", customer)
			}
			nb := capabilities.EgressGetCaveats{Spaces: spaces}
			if (from == "") != (to == "") {
				return fmt.Errorf("--from and --to go together")
			}
			if from != "" {
				nb.Period = &capabilities.EgressPeriod{From: from, To: to}
			}
			cl := client.New(url)
			serviceDID, err := serviceIdentity(ctx, cl, service)
			if err != nil {
				return err
			}
			inv, err := client.EgressGet(agent, serviceDID, account, nb, dlgs...)
			if err != nil {
				return err
			}
			rcpts, err := cl.Execute(ctx, inv)
			if err != nil {
				return err
			}
			view, err := client.View(rcpts[0])
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if name, msg := client.OutcomeFailure(rcpts[0]); name != "" {
				enc.Encode(view)
				return fmt.Errorf("account/egress/get failed: %s: %s", name, msg)
			}
			return enc.Encode(view.Ok)
		})
}

// readProofs parses delegations given as lines, or @FILE holding them.
func readProofs(values []string) ([]delegation.Delegation, error) {
	var lines []string
	for _, v := range values {
		if name, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("--proof: %w", err)
			}
			lines = append(lines, strings.Fields(string(b))...)
			continue
		}
		lines = append(lines, strings.TrimSpace(v))
	}
	var out []delegation.Delegation
	for i, l := range lines {
		d, err := delegation.Parse(l)
		if err != nil {
			return nil, fmt.Errorf("--proof %d is not a delegation: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}
