package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// Exit statuses: 1 when a command ran and failed, 2 when the command line
// itself is wrong (an unknown subcommand or flag, a bad flag value), as
// flag.ExitOnError and most Unix tools do.
const (
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a command line egressd cannot run. It is reported in one
// line, followed by where the command's help is, never with the help itself:
// forty lines of flags bury the one line that says what is wrong.
type usageError struct {
	cmd string // the command's path, "billing list"
	msg string
}

func (e *usageError) Error() string { return e.msg }

// flagError is a usage error about a flag of the command whose flag set is fs.
func flagError(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{cmd: fs.Name(), msg: fmt.Sprintf(format, args...)}
}

// cli runs the command tree and decides what the user sees when the command
// line is wrong or asks for help.
type cli struct {
	root *ffcli.Command
	// last is the command whose usage the flag package or ffcli asked for
	// last: the one a -h, a flag error or a missing subcommand is about.
	last *ffcli.Command
}

func newCLI(root *ffcli.Command) *cli {
	c := &cli{root: root}
	c.prepare(root, true)
	return c
}

// prepare silences the flag package (it would print the whole usage on any
// bad flag), gives every command the usage text of usageText, checks flag
// values before any command runs, and answers a group command (billing,
// customer...) run without a known subcommand.
func (c *cli) prepare(cmd *ffcli.Command, root bool) {
	cmd.FlagSet.SetOutput(io.Discard)
	cmd.UsageFunc = func(cmd *ffcli.Command) string {
		c.last = cmd
		return usageText(cmd)
	}
	switch {
	case len(cmd.Subcommands) > 0 && !root:
		cmd.Exec = func(ctx context.Context, args []string) error { return subcommandError(cmd, args) }
	case cmd.Exec != nil:
		exec := cmd.Exec
		cmd.Exec = func(ctx context.Context, args []string) error {
			if err := checkFlagValues(cmd.FlagSet); err != nil {
				return err
			}
			return exec(ctx, args)
		}
	}
	for _, sub := range cmd.Subcommands {
		c.prepare(sub, false)
	}
}

// run runs the command line and returns the exit status.
func (c *cli) run(ctx context.Context, args []string) int {
	if err := c.root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h or --help: asked for, so on stdout, and a success.
			fmt.Print(usageText(c.last))
			return 0
		}
		if c.last == nil {
			// An EGRESSD_* variable's value is parsed after the flags,
			// without asking for a usage: find the command from args.
			c.last = commandFor(c.root, args)
		}
		return c.report(c.flagParseError(err))
	}
	return c.report(c.root.Run(ctx))
}

// report prints err and returns the exit status it calls for.
func (c *cli) report(err error) int {
	var (
		usage *usageError
		bare  *noSubcommandError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		name := "egressd"
		if usage.cmd != "" && usage.cmd != "egressd" {
			name += " " + usage.cmd
		}
		fmt.Fprintf(os.Stderr, "%s: %s\nsee %s --help\n", name, usage.msg, name)
		return exitUsage
	case errors.As(err, &bare):
		// A bare `egressd` or `egressd billing`: the list of subcommands is
		// the answer, but the command did nothing.
		fmt.Fprint(os.Stderr, usageText(bare.cmd))
		return exitUsage
	}
	fmt.Fprintln(os.Stderr, "egressd:", err)
	return exitFailed
}

var (
	invalidValue = regexp.MustCompile(`^invalid value "(.*)" for flag -(\S+): (.*)$`)
	undefined    = regexp.MustCompile(`^flag provided but not defined: -(\S+)$`)
	needsValue   = regexp.MustCompile(`^flag needs an argument: -(\S+)$`)
	fromEnv      = regexp.MustCompile(`error setting flag "(\S+)" from environment variable "(\S+)": (.*)$`)
)

// commandFor follows args down the command tree as ffcli does, for an error
// found after the flags were parsed.
func commandFor(root *ffcli.Command, args []string) *ffcli.Command {
	cmd := root
	for _, arg := range args {
		for _, sub := range cmd.Subcommands {
			if strings.EqualFold(sub.Name, arg) {
				cmd = sub
				break
			}
		}
	}
	return cmd
}

// flagParseError turns the flag package's message into one line naming the
// flag as the README writes it (--flag) and the form its value takes.
func (c *cli) flagParseError(err error) error {
	fs := c.root.FlagSet
	if c.last != nil {
		fs = c.last.FlagSet
	}
	cause := err
	if inner := errors.Unwrap(err); inner != nil {
		cause = inner // ff's "error parsing commandline arguments: " adds nothing
	}
	msg := cause.Error()
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		reason := m[3]
		if f := fs.Lookup(m[2]); f != nil {
			if form := expectedForm(f); form != "" {
				reason = "expected " + form
			}
		}
		return flagError(fs, "--%s %q: %s", m[2], m[1], reason)
	}
	if m := fromEnv.FindStringSubmatch(msg); m != nil {
		reason := m[3]
		if f := fs.Lookup(m[1]); f != nil {
			if form := expectedForm(f); form != "" {
				reason = "expected " + form
			}
		}
		return flagError(fs, "%s=%q (--%s): %s", m[2], os.Getenv(m[2]), m[1], reason)
	}
	if m := undefined.FindStringSubmatch(msg); m != nil {
		return flagError(fs, "unknown flag --%s", strings.TrimLeft(m[1], "-"))
	}
	if m := needsValue.FindStringSubmatch(msg); m != nil {
		return flagError(fs, "--%s needs a value", m[1])
	}
	return flagError(fs, "%s", strings.TrimPrefix(err.Error(), "error parsing environment variables: "))
}

// expectedForm describes the values a flag takes, from its type.
func expectedForm(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return "a duration with a unit, such as 500ms, 30s, 5m or 1h"
	case int, int64:
		return "a whole number"
	case uint, uint64:
		return "a whole number, 0 or more"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	}
	return ""
}

// noSubcommandError is a group command run with no subcommand.
type noSubcommandError struct{ cmd *ffcli.Command }

func (e *noSubcommandError) Error() string { return "no subcommand" }

// subcommandError answers a group command's own Exec: with no arguments the
// list of subcommands, otherwise the word that is not one.
func subcommandError(cmd *ffcli.Command, args []string) error {
	if len(args) == 0 {
		return &noSubcommandError{cmd}
	}
	var names []string
	for _, sub := range cmd.Subcommands {
		names = append(names, sub.Name)
	}
	return &usageError{cmd: cmd.FlagSet.Name(), msg: fmt.Sprintf("unknown subcommand %q (one of: %s)", args[0], strings.Join(names, ", "))}
}

// help prints the usage of the command args name (`egressd help billing
// list`), on stdout: it was asked for.
func help(root *ffcli.Command, args []string) error {
	cmd := root
	for _, name := range args {
		var found *ffcli.Command
		for _, sub := range cmd.Subcommands {
			if strings.EqualFold(sub.Name, name) {
				found = sub
			}
		}
		if found == nil {
			return &usageError{msg: fmt.Sprintf("no command %q", strings.TrimSpace("egressd "+strings.Join(args, " ")))}
		}
		cmd = found
	}
	fmt.Print(usageText(cmd))
	return nil
}
