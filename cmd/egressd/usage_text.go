package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// usageText is a command's --help. It differs from ffcli's in what an
// operator reading it next to the README needs: flags written --flag as the
// README writes them, the required ones listed first and without the zero
// "default" they cannot keep, and a default shown only when there is one.
func usageText(c *ffcli.Command) string {
	var b strings.Builder
	if c.ShortHelp != "" {
		fmt.Fprintf(&b, "DESCRIPTION\n  %s\n\n", c.ShortHelp)
	}
	usage := c.ShortUsage
	if usage == "" {
		usage = c.Name
	}
	fmt.Fprintf(&b, "USAGE\n  %s\n\n", usage)
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.LongHelp)
	}
	if len(c.Subcommands) > 0 {
		b.WriteString("SUBCOMMANDS\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, sub := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", sub.Name, sub.ShortHelp)
		}
		tw.Flush()
		b.WriteString("\n")
	}
	var required, optional []*flag.Flag
	c.FlagSet.VisitAll(func(f *flag.Flag) {
		if _, ignored := f.Value.(ignoredFlag); ignored {
			return
		}
		if isRequired(f) {
			required = append(required, f)
		} else {
			optional = append(optional, f)
		}
	})
	writeFlags(&b, "REQUIRED FLAGS", required)
	writeFlags(&b, "FLAGS", optional)
	return strings.TrimSpace(b.String()) + "\n"
}

// isRequired reads the flag's help: a required flag says "(required" there,
// which is also what the README's table shows.
func isRequired(f *flag.Flag) bool { return strings.Contains(f.Usage, "(required") }

func writeFlags(b *strings.Builder, title string, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(b, "%s\n", title)
	tw := tabwriter.NewWriter(b, 0, 2, 2, ' ', 0)
	for _, f := range flags {
		name := "--" + f.Name
		if arg := argName(f); arg != "" {
			name += " " + arg
		}
		help := f.Usage
		if !isRequired(f) && !isZeroDefault(f) {
			help += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, help)
	}
	tw.Flush()
	b.WriteString("\n")
}

// argName names the value a flag takes by its type; a boolean takes none.
// flag.UnquoteUsage is not used: it would take a `quoted` command in the
// help for the value's name ("--proof egressd delegate").
func argName(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "value"
	}
	switch v := g.Get().(type) {
	case bool:
		return ""
	case string, []string:
		return "string"
	default:
		s := strings.TrimPrefix(fmt.Sprintf("%T", v), "time.")
		return strings.ToLower(s)
	}
}

// isZeroDefault: an empty or zero default says nothing the help does not.
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return true
	}
	return false
}
