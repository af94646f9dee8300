package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/did"
)

func provisionCommand() *ffcli.Command {
	var (
		backend                   backendFlags
		space, customer, provider string
		key, didWeb               string
	)
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	backend.register(fs)
	fs.StringVar(&space, "space", "", "the space (did:key) to bill (required)")
	fs.StringVar(&customer, "customer", "", "the customer (did:mailto:...) who pays for it (required)")
	fs.StringVar(&provider, "provider", "", "provider DID of the consumer record; default: the service DID (from --did, --key or the data directory)")
	fs.StringVar(&key, "key", "", "service key, to derive the default provider when the data directory has none")
	fs.StringVar(&didWeb, "did", "", "service did:web, to derive the default provider")
	return command("provision",
		"egressd provision --data-dir DIR --space did:key:... --customer did:mailto:... [--provider did:...]",
		"record that a customer pays for a space's egress", fs,
		func(ctx context.Context, args []string) error {
			if err := checkDID(space, "did:key:", "--space"); err != nil {
				return err
			}
			if err := checkDID(customer, "did:mailto:", "--customer"); err != nil {
				return err
			}
			if provider == "" {
				s, _, err := loadSigner(backend.dataDir, key, didWeb, false)
				if err != nil {
					return fmt.Errorf("finding the default provider: %w", err)
				}
				provider = s.DID().String()
			} else if err := checkDID(provider, "did:", "--provider"); err != nil {
				return err
			}
			store, closeStore, err := backend.customerStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := store.Provision(ctx, space, customer, provider); err != nil {
				return err
			}
			fmt.Printf("provisioned %s for %s under %s\n", space, customer, provider)
			return nil
		})
}

func customerCommand() *ffcli.Command {
	var (
		backend                  backendFlags
		customer, stripeCustomer string
	)
	fs := flag.NewFlagSet("customer set", flag.ContinueOnError)
	backend.register(fs)
	fs.StringVar(&customer, "customer", "", "the customer (did:mailto:...) (required)")
	fs.StringVar(&stripeCustomer, "stripe-customer", "", "the customer's Stripe customer ID (cus_...); empty removes it")
	set := command("set",
		"egressd customer set --data-dir DIR --customer did:mailto:... --stripe-customer cus_...",
		"set the Stripe account a customer is billed through", fs,
		func(ctx context.Context, args []string) error {
			if err := checkDID(customer, "did:mailto:", "--customer"); err != nil {
				return err
			}
			account := ""
			if stripeCustomer != "" {
				if !strings.HasPrefix(stripeCustomer, "cus_") {
					return fmt.Errorf("--stripe-customer %q: expected a Stripe customer ID (cus_...)", stripeCustomer)
				}
				account = "stripe:" + stripeCustomer
			}
			store, closeStore, err := backend.customerStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := store.SetAccount(ctx, customer, account); err != nil {
				return err
			}
			fmt.Printf("customer %s account set to %q\n", customer, account)
			return nil
		})
	root := command("customer", "egressd customer set [flags]", "manage customers", flag.NewFlagSet("customer", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{set}
	return root
}

// checkDID rejects an empty or malformed DID flag with the flag's name.
func checkDID(value, prefix, name string) error {
	if value == "" {
		return fmt.Errorf("%s is required", name)
	}
	if !strings.HasPrefix(value, prefix) {
		return fmt.Errorf("%s %q: expected a %s DID", name, value, strings.TrimSuffix(prefix, ":"))
	}
	if _, err := did.Parse(value); err != nil {
		return errors.Join(fmt.Errorf("%s %q is not a valid DID", name, value), err)
	}
	return nil
}
