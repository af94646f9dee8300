package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
)

func idCommand() *ffcli.Command {
	var (
		backend     backendFlags
		key, didWeb string
	)
	fs := flag.NewFlagSet("id", flag.ContinueOnError)
	backend.registerDataDir(fs)
	fs.StringVar(&key, "key", "", "service key (Mg...); default: the key in the data directory")
	fs.StringVar(&didWeb, "did", "", "service did:web, printed instead of the did:key when set")
	return command("id", "egressd id --data-dir DIR", "print the service DID", fs,
		func(ctx context.Context, args []string) error {
			s, _, err := loadSigner(backend.dataDir, key, didWeb, true)
			if err != nil {
				return err
			}
			fmt.Println(s.DID())
			return nil
		})
}

func keyCommand() *ffcli.Command {
	gen := command("generate", "egressd key generate",
		"generate an ed25519 key: prints '# <did:key>' then the key (Mg...)",
		flag.NewFlagSet("key generate", flag.ContinueOnError),
		func(ctx context.Context, args []string) error {
			s, err := signer.Generate()
			if err != nil {
				return err
			}
			key, err := signer.Format(s)
			if err != nil {
				return err
			}
			fmt.Printf("# %s\n%s\n", s.DID(), key)
			return nil
		})
	root := command("key", "egressd key generate", "manage keys", flag.NewFlagSet("key", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{gen}
	return root
}
