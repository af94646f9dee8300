package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/did"

	"github.com/egressd/egressd/customers"
)

// storachaProducts are the products Storacha's code knows (w3infra
// billing/lib/product-info.js): Storacha looks every customer's product up
// there to find the plan's limit, and a customer whose product it does not
// find cannot upload (PlanNotFound), so with --storacha no other is written.
// did:web:reserved.storacha.network is left out: it needs a
// reservedCapacity, which egressd does not set (MissingCapacity otherwise).
var storachaProducts = []string{
	"did:web:trial.storacha.network",
	"did:web:free.storacha.network",
	"did:web:starter.storacha.network",
	"did:web:lite.storacha.network",
	"did:web:business.storacha.network",
	"did:web:free.staging.storacha.network",
	"did:web:starter.staging.storacha.network",
	"did:web:lite.staging.storacha.network",
	"did:web:business.staging.storacha.network",
	"did:web:free.web3.storage",
	"did:web:starter.web3.storage",
	"did:web:lite.web3.storage",
	"did:web:business.web3.storage",
	"did:web:free.staging.web3.storage",
	"did:web:starter.staging.web3.storage",
	"did:web:lite.staging.web3.storage",
	"did:web:business.staging.web3.storage",
}

func provisionCommand() *ffcli.Command {
	var (
		backend                   backendFlags
		space, customer, provider string
		key, didWeb               string
	)
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	// Provision may come before the first serve: it creates the data
	// directory if need be (see dataDirRule).
	backend.registerTables(fs)
	backend.ignoreStores(fs)
	fs.StringVar(&space, "space", "", "the space (did:key) to bill (required)")
	fs.StringVar(&customer, "customer", "", "the customer (did:mailto:...) who pays for it (required); with --storacha it must have a product (see customer set --product)")
	fs.StringVar(&provider, "provider", "", "provider DID of the consumer record, a did:web with --storacha; default: the service DID (from --did, --key or the data directory)")
	fs.StringVar(&key, "key", "", "service key, to derive the default provider when the data directory has none")
	fs.StringVar(&didWeb, "did", "", "service did:web, to derive the default provider")
	return command("provision",
		"egressd provision --data-dir DIR --space did:key:... --customer did:mailto:... [--provider did:...]",
		"record that a customer pays for a space's egress (a space, once provisioned, is never moved)", fs,
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
			if err := checkStorachaBackend(backend); err != nil {
				return err
			}
			if backend.storacha {
				if err := checkStorachaProvider(provider, "the provider",
					"give the service's did:web identity with --did did:web:... (as serve has it), or --provider did:web:..."); err != nil {
					return err
				}
			}
			p := customers.Provisioning{Space: space, Customer: customer, Provider: provider}
			if !backend.storacha {
				// Storacha's provider/add never creates a customer; on
				// egressd's own tables a new customer gets the default.
				p.NewCustomerProduct = customers.DefaultProduct
			}
			store, closeStore, err := backend.customerStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			if err := store.ProvisionSpace(ctx, p); err != nil {
				return explainProvision(err, p)
			}
			fmt.Printf("provisioned %s for %s under %s\n", space, customer, provider)
			return nil
		})
}

// explainProvision says why a provisioning was refused and what to do.
func explainProvision(err error, p customers.Provisioning) error {
	var held *customers.AlreadyProvisionedError
	switch {
	case errors.As(err, &held) && held.Customer != p.Customer:
		return fmt.Errorf("%w\n"+
			"It stays %s's: a space, once provisioned, is never moved to another customer. Storacha never\n"+
			"reassigns a space (its provider/add refuses a space that has a provider, and its consumer and\n"+
			"subscription tables must name the same customer), so egressd does not either. To bill %s,\n"+
			"provision a space of theirs; %s's space is billed to %s as it is", err, held.Customer, p.Customer, held.Customer, held.Customer)
	case errors.As(err, &held):
		return fmt.Errorf("%w\n"+
			"A space has one provider, as in Storacha. If %s is this service under another name, run\n"+
			"serve with --alias %s: it then finds the space as it is, and nothing needs provisioning", err, held.Provider, held.Provider)
	case errors.Is(err, customers.ErrNoProduct):
		return fmt.Errorf("%w\n"+
			"--storacha: Storacha's provider/add provisions a space only for a customer with a plan (a\n"+
			"customer record with a product), and never creates the customer. Give %s one first:\n"+
			"egressd customer set --storacha --customer %s --product did:web:... [--stripe-customer cus_...]", err, p.Customer, p.Customer)
	}
	return err
}

func customerCommand() *ffcli.Command {
	var (
		backend                           backendFlags
		customer, stripeCustomer, product string
	)
	fs := flag.NewFlagSet("customer set", flag.ContinueOnError)
	backend.registerTables(fs)
	backend.ignoreStores(fs)
	// A customer is set for spaces provision recorded: in the directory
	// provision (or serve) made, never in a new one.
	backend.mustExist = true
	fs.StringVar(&customer, "customer", "", "the customer (did:mailto:...) (required)")
	fs.StringVar(&stripeCustomer, "stripe-customer", "", "the customer's Stripe customer ID (cus_...); empty removes it")
	fs.StringVar(&product, "product", "", "the customer's product (plan), a did:web such as did:web:starter.storacha.network: given to a customer that has none, never changed once set; required with --storacha for a new customer; default: "+customers.DefaultProduct+" without --storacha")
	set := command("set",
		"egressd customer set --data-dir DIR --customer did:mailto:... --stripe-customer cus_... [--product did:web:...]",
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
			if err := checkStorachaBackend(backend); err != nil {
				return err
			}
			if product != "" {
				if err := checkProduct(product, backend.storacha); err != nil {
					return err
				}
			}
			u := customers.CustomerUpdate{Customer: customer, Account: account, Product: product}
			if !backend.storacha {
				u.DefaultProduct = customers.DefaultProduct
			}
			store, closeStore, err := backend.customerStore(ctx)
			if err != nil {
				return err
			}
			defer closeStore()
			r, err := store.SetCustomer(ctx, u)
			switch {
			case errors.Is(err, customers.ErrNoProduct):
				return fmt.Errorf("%w\n"+
					"--storacha: Storacha's decoders require a product on every customer record, and its monthly\n"+
					"billing stops at the first one without (every customer after it goes unbilled). Name the\n"+
					"customer's plan with --product, one of:\n  %s", err, strings.Join(storachaProducts, "\n  "))
			case errors.Is(err, customers.ErrProductMismatch):
				return fmt.Errorf("%w\n"+
					"A customer's product is never changed here (in Storacha a plan changes through Stripe):\n"+
					"leave --product out to keep it", err)
			case err != nil:
				return err
			}
			fmt.Printf("customer %s account set to %q (product %s)\n", customer, r.Account, r.Product)
			return nil
		})
	root := command("customer", "egressd customer set [flags]", "manage customers", flag.NewFlagSet("customer", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{set}
	return root
}

// checkStorachaBackend refuses --storacha without --tables: Storacha's
// tables are in DynamoDB, and the embedded store is no part of them.
func checkStorachaBackend(b backendFlags) error {
	if b.storacha && b.tables == "" {
		return errors.New("--storacha names Storacha's tables: give them with --tables dynamodb://<stage>-w3infra-")
	}
	return nil
}

// checkStorachaProvider refuses a provider that is not a did:web, with
// --storacha: Storacha's providers are did:web services, its decoders read
// the provider of a consumer or subscription row as one, and its
// provider/add accepts only its own.
func checkStorachaProvider(provider, what, fix string) error {
	if strings.HasPrefix(provider, "did:web:") {
		return nil
	}
	return fmt.Errorf("--storacha: %s %s is not a did:web. Storacha's providers are did:web (its decoders read\n"+
		"a consumer row's provider as one): %s", what, provider, fix)
}

// checkProduct checks a --product: a did:web, and with --storacha one of
// the products Storacha's code knows.
func checkProduct(product string, storacha bool) error {
	if err := checkDID(product, "did:web:", "--product"); err != nil {
		return err
	}
	if storacha && !slices.Contains(storachaProducts, product) {
		return fmt.Errorf("--storacha: --product %s is not one of Storacha's products (w3infra billing/lib/product-info.js; a\n"+
			"customer with another cannot use Storacha, and did:web:reserved.storacha.network needs a reserved\n"+
			"capacity egressd does not set):\n  %s", product, strings.Join(storachaProducts, "\n  "))
	}
	return nil
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
