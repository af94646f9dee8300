// Command egressd meters and bills egress for content gateways. One binary:
// the server (serve), the billing worker (worker) and the operator's tools.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newCLI(rootCommand()).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// rootCommand is egressd and all its subcommands.
func rootCommand() *ffcli.Command {
	fs := flag.NewFlagSet("egressd", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit, as egressd version does")
	root := &ffcli.Command{
		Name:       "egressd",
		ShortUsage: "egressd <subcommand> [flags]   (egressd help <subcommand> for its flags)",
		LongHelp: "egressd records egress served by content gateways (ucanto usage/record and\n" +
			"space/content/serve/egress/record), issues signed receipts and bills the\n" +
			"egress to Stripe Billing Meters exactly once.\n\n" +
			"Every flag can also be set with an environment variable: EGRESSD_ followed by\n" +
			"the flag name in capitals with dashes as underscores (--data-dir: EGRESSD_DATA_DIR).\n" +
			"Repeatable flags take a comma-separated list from the environment.",
		FlagSet: fs,
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
	}
	root.Exec = func(ctx context.Context, args []string) error {
		switch {
		case *showVersion:
			fmt.Println(readBuild())
			return nil
		case len(args) > 0 && args[0] == "help":
			return help(root, args[1:])
		}
		// A mistyped subcommand (`egressd serv`) lands here: say so, rather
		// than print the usage and exit 0 as if something had run.
		return subcommandError(root, args)
	}
	return root
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
	return command("version", "egressd version", "print the version, VCS revision and Go version of this build", fs, func(context.Context, []string) error {
		fmt.Println(readBuild())
		return nil
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return fmt.Sprint(*l) }
func (l *stringList) Get() any       { return []string(*l) }
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
