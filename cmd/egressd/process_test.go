package main_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary builds egressd once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "egressd-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "egressd")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out)}
	}
	return path, nil
})

type buildError struct{ out string }

func (e *buildError) Error() string { return "go build failed:\n" + e.out }

func egressdBinary(t *testing.T) string {
	t.Helper()
	path, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// isolatedEnv is the test's environment without anything that would steer
// egressd elsewhere: a developer's STRIPE_SECRET_KEY must never reach real
// Stripe from a test, and EGRESSD_* settings must not change what is tested.
func isolatedEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STRIPE_SECRET_KEY=") || strings.HasPrefix(kv, "STRIPE_WEBHOOK_SECRET=") || strings.HasPrefix(kv, "EGRESSD_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// run runs an egressd subcommand to completion and returns its stdout.
func run(t *testing.T, args ...string) string {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with env added to the isolated environment.
func runEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), args...)
	cmd.Env = isolatedEnv(env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("egressd %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// runFails runs an egressd subcommand that must fail and returns its stderr.
func runFails(t *testing.T, args ...string) string {
	t.Helper()
	return runFailsEnv(t, nil, args...)
}

// runFailsEnv is runFails with env added to the isolated environment.
func runFailsEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), args...)
	cmd.Env = isolatedEnv(env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("egressd %s succeeded, want a failure", strings.Join(args, " "))
	}
	return stderr.String()
}

// serveProcess is a running `egressd serve`.
type serveProcess struct {
	cmd *exec.Cmd
	URL string
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startServe starts `egressd serve` on a free port and waits until it listens.
func startServe(t *testing.T, dataDir string, extra ...string) *serveProcess {
	t.Helper()
	return startServeEnv(t, nil, dataDir, extra...)
}

// startServeEnv is startServe with env added to the isolated environment.
func startServeEnv(t *testing.T, env []string, dataDir string, extra ...string) *serveProcess {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(egressdBinary(t), args...)
	cmd.Env = isolatedEnv(env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p.URL = <-found:
	case <-time.After(30 * time.Second):
		log, _ := os.ReadFile(logFile.Name())
		t.Fatalf("egressd serve did not start:\n%s", log)
	}
	return p
}

// kill sends SIGKILL: no shutdown code runs.
func (p *serveProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	stopProcess(t, p.cmd)
}

// stopProcess sends SIGTERM to an egressd process and waits for a clean exit.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	name := strings.Join(cmd.Args[:min(2, len(cmd.Args))], " ")
	cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s exited with %v on SIGTERM", name, err)
		}
	case <-ctx.Done():
		t.Fatalf("%s did not stop on SIGTERM", name)
	}
}
