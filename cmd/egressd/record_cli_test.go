package main_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const tourCID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"

// TestRecordResend: record --save keeps the signed invocation, --resend
// sends that same one again; the service answers with the same receipt and
// counts the egress once. Two plain records are two invocations, counted
// twice: that is why --resend exists.
func TestRecordResend(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data)
	spaceDID, spaceKey := generateKey(t)
	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")

	saved := filepath.Join(t.TempDir(), "invocation.car")
	first := decodeView(t, run(t, "record", "--url", srv.URL, "--key", spaceKey, "--resource", tourCID, "--bytes", "1000", "--save", saved))
	if first.Error != nil {
		t.Fatalf("record failed: %s", first.Error)
	}
	again := decodeView(t, run(t, "record", "--url", srv.URL, "--resend", saved))
	if again.Receipt != first.Receipt || again.Invocation != first.Invocation {
		t.Fatalf("--resend got receipt %s for %s; the first send got %s for %s", again.Receipt, again.Invocation, first.Receipt, first.Invocation)
	}
	if u := waitSettled(t, data); u.Events != 1 || u.Bytes != 1000 {
		t.Fatalf("after a send and a resend: %d events, %d bytes; want 1 and 1000", u.Events, u.Bytes)
	}
	if stderr := runFails(t, "record", "--url", srv.URL, "--key", spaceKey, "--resource", tourCID, "--bytes", "1", "--save", saved); !strings.Contains(stderr, "--save") {
		t.Fatalf("--save over an existing file: %s", stderr)
	}
}

// TestRecordFailureExits1: a receipt that carries a failure is printed on
// stdout as any receipt, and named on stderr with exit status 1, so that a
// script notices.
func TestRecordFailureExits1(t *testing.T) {
	srv := startServe(t, t.TempDir())
	_, spaceKey := generateKey(t) // a space nobody provisioned
	r := runCode(t, "record", "--url", srv.URL, "--key", spaceKey, "--resource", tourCID, "--bytes", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "ConsumerNotFound") {
		t.Fatalf("record for an unprovisioned space: exit %d, stderr %s", r.code, r.stderr)
	}
	if v := decodeView(t, r.stdout); v.Error == nil || v.Receipt == "" {
		t.Fatalf("stdout is not the failure receipt: %s", r.stdout)
	}
}

// TestBillingListPages: billing list shows the oldest served first with
// its space, and says how to see what is past --limit.
func TestBillingListPages(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data) // no Stripe key: every entry becomes unbillable
	spaceDID, spaceKey := generateKey(t)
	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")
	now := time.Now().UTC().Truncate(time.Second)
	// Sent newest first, so that the time order is not the order sent.
	servedAt := []time.Time{now.Add(-1 * time.Minute), now.Add(-3 * time.Minute), now.Add(-2 * time.Minute)}
	for _, at := range servedAt {
		run(t, "record", "--url", srv.URL, "--key", spaceKey, "--resource", tourCID, "--bytes", "10", "--served-at", at.Format(time.RFC3339))
	}
	waitSettled(t, data)

	first := run(t, "billing", "list", "--data-dir", data, "--limit", "2")
	rows := strings.Split(strings.TrimSpace(first), "\n")
	if len(rows) != 4 || !strings.Contains(rows[0], "SPACE") || !strings.Contains(rows[1], spaceDID) {
		t.Fatalf("billing list --limit 2 printed:\n%s", first)
	}
	for i, want := range []time.Time{servedAt[1], servedAt[2]} {
		if !strings.HasPrefix(rows[i+1], want.Format(time.RFC3339)) {
			t.Fatalf("row %d is not the entry served at %s:\n%s", i+1, want.Format(time.RFC3339), first)
		}
	}
	m := regexp.MustCompile(`^1 more: add --after (\S+)$`).FindStringSubmatch(rows[3])
	if m == nil {
		t.Fatalf("the last line does not say how to see the rest:\n%s", first)
	}
	rest := strings.Split(strings.TrimSpace(run(t, "billing", "list", "--data-dir", data, "--limit", "2", "--after", m[1])), "\n")
	if len(rest) != 2 || !strings.HasPrefix(rest[1], servedAt[0].Format(time.RFC3339)) {
		t.Fatalf("--after %s printed:\n%s", m[1], strings.Join(rest, "\n"))
	}
	if out := run(t, "billing", "list", "--data-dir", data, "--json", "--state", "reported"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("billing list --json with nothing to list printed %q", out)
	}
}

// TestBuildInfoMetric: serve's metrics say which build runs.
func TestBuildInfoMetric(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startServe(t, t.TempDir(), "--metrics-listen", addr)
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`(?m)^egressd_build_info\{go_version="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`).Match(body) {
		t.Fatalf("no egressd_build_info in serve's metrics:\n%.2000s", body)
	}
}

// TestServeOnReadOnlyDirectory: serve names the directory it cannot write,
// instead of SQLite's "unable to open database file (14)". Root writes to
// any directory, so as root the failing serve runs as nobody (uid 65534),
// the owner of a data directory nobody may write.
func TestServeOnReadOnlyDirectory(t *testing.T) {
	base := t.TempDir()
	data := filepath.Join(base, "data")
	startServe(t, data).stop(t) // the files and the key, as a first start leaves them
	bin := egressdBinary(t)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		// nobody must reach the binary and the directory, and own its files.
		copied := filepath.Join(base, "egressd")
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(copied, b, 0o755); err != nil {
			t.Fatal(err)
		}
		bin = copied
		for _, dir := range []string{filepath.Dir(base), base} {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		err = filepath.Walk(data, func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(path, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	if err := os.Chmod(data, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(data, 0o700) })
	cmd := exec.Command(bin, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off")
	cmd.Env = isolatedEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("serve on a read-only directory started")
	}
	if !strings.Contains(stderr.String(), "the directory "+data+" is read-only") {
		t.Fatalf("serve on a read-only directory: %s", stderr.String())
	}
}
