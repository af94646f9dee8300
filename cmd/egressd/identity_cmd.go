package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

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
			// Only serve generates the key: id on a mistyped --data-dir must
			// say there is none, not print a new identity.
			s, _, err := loadSigner(backend.dataDir, key, didWeb, false)
			if err != nil {
				return err
			}
			fmt.Println(s.DID())
			return nil
		})
}

func keyCommand() *ffcli.Command {
	var out string
	fs := flag.NewFlagSet("key generate", flag.ContinueOnError)
	fs.StringVar(&out, "out", "", "write the key to this new file, readable by its owner only (0600), instead of stdout; an existing file is never overwritten")
	gen := command("generate", "egressd key generate [--out FILE]",
		"generate an ed25519 key: prints (or writes to --out) '# <did:key>' then the key (Mg...)", fs,
		func(ctx context.Context, args []string) error {
			s, err := signer.Generate()
			if err != nil {
				return err
			}
			key, err := signer.Format(s)
			if err != nil {
				return err
			}
			text := fmt.Sprintf("# %s\n%s\n", s.DID(), key)
			if out == "" {
				fmt.Print(text)
				return nil
			}
			return writeKeyFile(out, text)
		})
	root := command("key", "egressd key generate", "manage keys", flag.NewFlagSet("key", flag.ContinueOnError),
		func(context.Context, []string) error { return flag.ErrHelp })
	root.Subcommands = []*ffcli.Command{gen}
	return root
}

// writeKeyFile writes a private key where only its owner can read it:
// `key generate > file` leaves it as readable as the umask allows, usually
// by everyone. O_EXCL: overwriting would lose the key a space or a gateway
// is known by.
func writeKeyFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--out %s exists: not overwriting a key (remove it first if it is not needed)", path)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("--out: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("--out: %w", err)
	}
	return f.Close()
}
