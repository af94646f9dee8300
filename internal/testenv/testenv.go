// Package testenv tells tests where the local stand-ins for egressd's external
// services (stripe-mock, MinIO, fauxqs, DynamoDB Local) are listening.
//
// scripts/test.sh starts those servers (through scripts/services.sh) and exports
// EGRESSD_TEST_<NAME>_URL for each of them. A test that needs one asks for it with
// URL; if the variable is missing or nothing answers there, the test fails
// loudly with instructions instead of skipping, so a run without the services can
// never pass silently.
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Names of the services that scripts/services.sh runs, for URL.
const (
	Stripe   = "STRIPE"   // stripe-mock
	S3       = "S3"       // MinIO (use path-style addressing)
	SQS      = "SQS"      // fauxqs
	DynamoDB = "DYNAMODB" // DynamoDB Local
)

// ReachTimeout bounds how long Reachable waits for a server to accept a connection.
const ReachTimeout = 3 * time.Second

// EnvVar returns the environment variable that holds the URL of service name,
// e.g. EnvVar("stripe") == "EGRESSD_TEST_STRIPE_URL".
func EnvVar(name string) string {
	return "EGRESSD_TEST_" + strings.ToUpper(name) + "_URL"
}

// URL returns the base URL of the local service name (e.g. "STRIPE", see the
// constants), read from EGRESSD_TEST_<NAME>_URL. It fails the test when the
// variable is unset or empty.
func URL(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(EnvVar(name)))
	if v == "" {
		t.Fatalf("testenv: %s is not set, so the %s test service is missing.\n"+
			"Run the tests with `bash scripts/test.sh` (it installs and starts the services), or\n"+
			"start them with `bash scripts/services.sh install && bash scripts/services.sh start`\n"+
			"and then `eval \"$(bash scripts/services.sh env)\"` before `go test`.",
			EnvVar(name), strings.ToUpper(name))
	}
	return strings.TrimRight(v, "/")
}

// Reachable fails the test unless something accepts a TCP connection at the host
// and port of rawURL within ReachTimeout.
func Reachable(t testing.TB, rawURL string) {
	t.Helper()
	if err := reach(rawURL, ReachTimeout); err != nil {
		t.Fatalf("testenv: nothing answers at %s: %v\n"+
			"Start the test services with `bash scripts/test.sh` (or `bash scripts/services.sh start`).",
			rawURL, err)
	}
}

// reach dials the host:port of rawURL until it connects or timeout passes.
func reach(rawURL string, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("bad URL: no host")
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		c, err := net.DialTimeout("tcp", addr, left)
		if err == nil {
			return c.Close()
		}
		if time.Until(deadline) < 100*time.Millisecond {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
