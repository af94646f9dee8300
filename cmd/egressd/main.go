// Command egressd meters and bills egress for content gateways. One binary:
// the server (serve), the billing worker (worker) and the operator's tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := rootCommand()
	if err := root.ParseAndRun(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if len(os.Args) < 2 {
				fmt.Fprintln(os.Stderr, ffcli.DefaultUsageFunc(root))
				os.Exit(2)
			}
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "egressd:", err)
		os.Exit(1)
	}
}

// rootCommand is egressd and all its subcommands.
func rootCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "egressd",
		ShortUsage: "egressd <subcommand> [flags]",
		LongHelp: "egressd records egress served by content gateways (ucanto usage/record and\n" +
			"space/content/serve/egress/record), issues signed receipts and bills the\n" +
			"egress to Stripe Billing Meters exactly once.\n\n" +
			"Every flag can also be set with an environment variable: EGRESSD_ followed by\n" +
			"the flag name in capitals with dashes as underscores (--data-dir: EGRESSD_DATA_DIR).\n" +
			"Repeatable flags take a comma-separated list from the environment.",
		FlagSet: flag.NewFlagSet("egressd", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{
			serveCommand(),
			workerCommand(),
			billingCommand(),
			usageCommand(),
			backupCommand(),
			awsCommand(),
			idCommand(),
			provisionCommand(),
			customerCommand(),
			accountCommand(),
			keyCommand(),
			delegateCommand(),
			recordCommand(),
			receiptCommand(),
			benchCommand(),
			versionCommand(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

// command builds a subcommand whose flags can also come from EGRESSD_* variables.
func command(name, usage, help string, fs *flag.FlagSet, exec func(context.Context, []string) error) *ffcli.Command {
	return &ffcli.Command{
		Name:       name,
		ShortUsage: usage,
		ShortHelp:  help,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix("EGRESSD"), ff.WithEnvVarSplit(",")},
		Exec:       exec,
	}
}

func versionCommand() *ffcli.Command {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	return command("version", "egressd version", "print the version", fs, func(context.Context, []string) error {
		fmt.Println(version)
		return nil
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// splitList flattens repeated and comma-separated flag values, dropping blanks.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
