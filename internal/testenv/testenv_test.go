package testenv

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

func TestURLSet(t *testing.T) {
	t.Setenv("EGRESSD_TEST_STRIPE_URL", "http://127.0.0.1:12111/")
	f := &fakeTB{TB: t}
	if got := URL(f, Stripe); got != "http://127.0.0.1:12111" {
		t.Fatalf("URL = %q", got)
	}
	if got := URL(f, "stripe"); got != "http://127.0.0.1:12111" {
		t.Fatalf("URL lower-case name = %q", got)
	}
	if f.fatal != "" {
		t.Fatalf("unexpected failure: %s", f.fatal)
	}
}

func TestURLMissingFails(t *testing.T) {
	t.Setenv("EGRESSD_TEST_NOPE_URL", "")
	f := &fakeTB{TB: t}
	URL(f, "NOPE")
	for _, want := range []string{"EGRESSD_TEST_NOPE_URL", "bash scripts/test.sh"} {
		if !strings.Contains(f.fatal, want) {
			t.Fatalf("failure message %q does not mention %q", f.fatal, want)
		}
	}
}

func TestReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &fakeTB{TB: t}
	Reachable(f, "http://"+ln.Addr().String())
	if f.fatal != "" {
		t.Fatalf("listening server reported unreachable: %s", f.fatal)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	if err := reach("http://"+addr, 300*time.Millisecond); err == nil {
		t.Fatalf("reach(%s) succeeded with no server", addr)
	}
	if err := reach("://bad", time.Second); err == nil {
		t.Fatal("reach accepted a malformed URL")
	}
}
