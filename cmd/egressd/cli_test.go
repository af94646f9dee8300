package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// exit is what one egressd run left: its streams and exit status.
type exit struct {
	stdout, stderr string
	code           int
}

// runCode runs egressd and returns whatever happened, for tests of exit
// statuses and of what goes to which stream.
func runCode(t *testing.T, args ...string) exit {
	t.Helper()
	return runCodeEnv(t, nil, args...)
}

// runCodeEnv is runCode with env added to the isolated environment.
func runCodeEnv(t *testing.T, env []string, args ...string) exit {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), args...)
	cmd.Env = isolatedEnv(env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("egressd %s: %v", strings.Join(args, " "), err)
	}
	return exit{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// TestCommandLineMistakes: a mistyped subcommand or a bad flag value exits
// 2 with one line naming what is wrong and where the help is, never with
// the whole usage; help asked for is printed on stdout and exits 0.
func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"serv", "--data-dir", "x"}, `unknown subcommand "serv"`},
		{[]string{"billing", "lst"}, `egressd billing: unknown subcommand "lst"`},
		{[]string{"help", "nope"}, `no command "egressd nope"`},
		{[]string{"serve", "--nope"}, "unknown flag --nope"},
		{[]string{"serve", "--read-timeout", "30"}, `--read-timeout "30": expected a duration`},
		{[]string{"serve", "--max-body-bytes", "-1"}, "--max-body-bytes -1: must be greater than 0"},
		{[]string{"serve", "--max-invocations", "0"}, "--max-invocations 0: must be greater than 0"},
		{[]string{"serve", "--worker-concurrency", "0"}, "--worker-concurrency 0: must be greater than 0"},
		{[]string{"worker", "--worker-concurrency", "0"}, "--worker-concurrency 0: must be greater than 0"},
		{[]string{"serve", "--stripe-url", ":::"}, `--stripe-url ":::": expected an http or https URL`},
		{[]string{"serve", "--shutdown-timeout", "-1s"}, "--shutdown-timeout -1s: must not be negative"},
		{[]string{"billing", "list", "--limit", "0"}, "--limit 0: must be greater than 0"},
		{[]string{"record", "--bytes"}, "--bytes needs a value"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			r := runCode(t, append(tc.args, dataDirIfServe(tc.args, data)...)...)
			if r.code != 2 {
				t.Fatalf("exit status %d, want 2; stderr:\n%s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[1], "see egressd") {
				t.Fatalf("stderr:\n%s\nwant one line with %q, then where the help is", r.stderr, tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatal("a refused command line created the data directory")
			}
		})
	}
}

// TestBadFlagFromEnvironment: a bad EGRESSD_* value is reported as a bad
// flag value is, naming the variable.
func TestBadFlagFromEnvironment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := runCodeEnv(t, []string{"EGRESSD_READ_TIMEOUT=30"}, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off")
	if r.code != 2 || !strings.HasPrefix(r.stderr, `egressd serve: EGRESSD_READ_TIMEOUT="30" (--read-timeout): expected a duration`) {
		t.Fatalf("EGRESSD_READ_TIMEOUT=30: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// dataDirIfServe points serve and worker at a directory of the test's, so
// that a check that wrongly passes cannot start them in ./data.
func dataDirIfServe(args []string, data string) []string {
	switch args[0] {
	case "serve":
		return []string{"--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off"}
	case "worker":
		return []string{"--data-dir", data}
	}
	return nil
}

// TestHelp: help X shows X's help, --flag as the README writes it, with the
// required flags apart and no made-up defaults.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "serve"}, {"serve", "--help"}, {"serve", "-h"}} {
		r := runCode(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "egressd serve [--data-dir DIR]") || !strings.Contains(r.stdout, "  --listen string") {
			t.Fatalf("egressd %s: exit %d, stdout:\n%s", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	if r := runCode(t, "help", "billing", "list"); r.code != 0 || !strings.Contains(r.stdout, "--after string") {
		t.Fatalf("help billing list: exit %d, stdout:\n%s", r.code, r.stdout)
	}
	record := runCode(t, "record", "--help").stdout
	required, optional, _ := strings.Cut(record, "\nFLAGS\n")
	for _, want := range []string{"REQUIRED FLAGS", "--bytes int64", "--key string", "--resource string"} {
		if !strings.Contains(required, want) {
			t.Errorf("record --help: no %q among the required flags:\n%s", want, record)
		}
	}
	if strings.Contains(optional, "--bytes") || strings.Contains(record, "(default 0)") || strings.Contains(record, "-proof egressd") {
		t.Errorf("record --help shows a required flag as optional, a zero default, or the proof's help as its value:\n%s", record)
	}
	for _, cmd := range [][]string{{"provision"}, {"customer", "set"}, {"usage"}, {"billing", "list"}} {
		help := runCode(t, append(cmd, "--help")...).stdout
		if strings.Contains(help, "--receipts") || (cmd[0] != "usage" && strings.Contains(help, "--queue")) {
			t.Errorf("%s --help lists a store the command does not open:\n%s", strings.Join(cmd, " "), help)
		}
	}
	// Still accepted, so one set of backend flags works for every command.
	if r := runCode(t, "billing", "list", "--data-dir", t.TempDir()+"/none", "--queue", "sqs://q", "--receipts", "s3://b"); r.code != 1 || !strings.Contains(r.stderr, "no data directory") {
		t.Fatalf("billing list --queue --receipts: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestVersion: the version names the Go release that built the binary,
// with the subcommand and with --version alike.
func TestVersion(t *testing.T) {
	sub, flag := runCode(t, "version"), runCode(t, "--version")
	if sub.code != 0 || flag.code != 0 || sub.stdout != flag.stdout || !strings.Contains(sub.stdout, runtime.Version()) || strings.TrimSpace(sub.stdout) == "dev" {
		t.Fatalf("version printed %q (exit %d), --version %q (exit %d)", sub.stdout, sub.code, flag.stdout, flag.code)
	}
}

// TestReportsNeedADataDirectory: commands other than serve, worker and
// provision refuse a data directory that is not there instead of creating
// it and reporting nothing.
func TestReportsNeedADataDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"usage"},
		{"billing", "list"},
		{"billing", "redrive", "--stripe-key", "sk_test_x"},
		{"billing", "reconcile", "--stripe-key", "sk_test_x", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"},
		{"customer", "set", "--customer", "did:mailto:example.com:alice"},
		{"id"},
	} {
		r := runCode(t, append(args, "--data-dir", data)...)
		if r.code != 1 || !(strings.Contains(r.stderr, "no data directory at "+data) || strings.Contains(r.stderr, "no service key in "+data)) {
			t.Errorf("egressd %s on a missing directory: exit %d, stderr %s", strings.Join(args, " "), r.code, r.stderr)
		}
		if _, err := os.Stat(data); err == nil {
			t.Fatalf("egressd %s created the data directory", strings.Join(args, " "))
		}
	}
	r := runCode(t, "provision", "--data-dir", data, "--space", "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG", "--customer", "did:mailto:example.com:alice", "--provider", "did:web:egress.example")
	if r.code != 0 {
		t.Fatalf("provision on a new directory: exit %d, stderr %s", r.code, r.stderr)
	}
	if u := usage(t, data); u.Events != 0 {
		t.Fatalf("usage after provision = %+v", u)
	}
}

// TestRedriveWithoutKey: one message, the one that says what to do.
func TestRedriveWithoutKey(t *testing.T) {
	r := runCode(t, "billing", "redrive", "--data-dir", t.TempDir())
	if r.code != 1 || strings.TrimSpace(r.stderr) != "egressd: billing redrive needs a Stripe key: --stripe-key or STRIPE_SECRET_KEY" {
		t.Fatalf("billing redrive without a key: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestKeyGenerateOut: the key file is its owner's alone, and never
// overwritten; what it holds is what key generate prints.
func TestKeyGenerateOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "space.key")
	run(t, "key", "generate", "--out", path)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(before)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "# did:key:") || !strings.HasPrefix(lines[1], "Mg") {
		t.Fatalf("key file holds %q", before)
	}
	if stderr := runFails(t, "key", "generate", "--out", path); !strings.Contains(stderr, "exists") {
		t.Fatalf("key generate over an existing file: %s", stderr)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("key generate --out overwrote a key")
	}
}
