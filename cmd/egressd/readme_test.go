package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// TestEveryFlagIsInTheREADME keeps the README's reference true: every flag of
// every subcommand must be named there, and every subcommand too.
func TestEveryFlagIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, c *ffcli.Command)
	walk = func(path string, c *ffcli.Command) {
		if path != "" && !strings.Contains(string(readme), "egressd "+path) {
			t.Errorf("README does not mention the command `egressd %s`", path)
		}
		c.FlagSet.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(string(readme), "`--"+f.Name+"`") {
				t.Errorf("README does not document `--%s` of `egressd %s`", f.Name, path)
			}
			if f.Usage == "" {
				t.Errorf("--%s of `egressd %s` has no help text", f.Name, path)
			}
		})
		for _, sub := range c.Subcommands {
			walk(strings.TrimSpace(path+" "+sub.Name), sub)
		}
	}
	walk("", rootCommand())
}
