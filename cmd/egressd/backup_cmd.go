package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/egressd/egressd/embedded"
)

func backupCommand() *ffcli.Command {
	var dataDir, out string
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.StringVar(&dataDir, "data-dir", "./data", "data directory to back up (it may be serving)")
	fs.StringVar(&out, "out", "", "directory to write the backup into: must not exist, or be empty (required)")
	return command("backup",
		"egressd backup --data-dir DIR --out NEW_DIR",
		"copy the data directory, consistently, while it serves: every SQLite file and the service key", fs,
		func(ctx context.Context, args []string) error {
			if out == "" {
				return errors.New("--out: name the directory to write the backup into")
			}
			if same, _ := filepath.Rel(filepath.Clean(dataDir), filepath.Clean(out)); same == "." {
				return errors.New("--out: must not be the data directory")
			}
			copied, err := embedded.Backup(ctx, dataDir, out, keyFile)
			if err != nil {
				return err
			}
			for _, name := range copied {
				fmt.Println(filepath.Join(out, name))
			}
			return nil
		})
}
