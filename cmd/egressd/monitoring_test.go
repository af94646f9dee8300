package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/awstest"
)

// unusedAddr is a loopback address nothing listens on (a port just released).
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getWithin asks url until it answers, for at most 30 s (a process that is
// still starting), and returns its status and body.
func getWithin(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkProbes checks that a monitoring listener serves liveness, readiness
// and metrics.
func checkProbes(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := getWithin(t, base+path); status != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s%s: %d %q, want 200 ok", base, path, status, body)
		}
	}
	if status, body := getWithin(t, base+"/metrics"); status != http.StatusOK || !strings.Contains(body, "egressd_queue_depth") {
		t.Errorf("GET %s/metrics: %d, without egressd_queue_depth", base, status)
	}
}

// TestMonitoringListenersServeProbes: serve's and the worker's
// --metrics-listen serve /healthz and /readyz beside /metrics, so a worker
// sidecar, which has no public listener, can be probed too.
func TestMonitoringListenersServeProbes(t *testing.T) {
	dir := t.TempDir()
	serveMetrics := unusedAddr(t)
	p := startServe(t, dir, "--metrics-listen", serveMetrics, "--worker=false")
	checkProbes(t, "http://"+serveMetrics)
	if status, body := getWithin(t, p.URL+"/readyz"); status != http.StatusOK {
		t.Errorf("GET /readyz on --listen: %d %s", status, body)
	}

	workerMetrics := unusedAddr(t)
	startWorker(t, nil, "--data-dir", dir, "--metrics-listen", workerMetrics)
	checkProbes(t, "http://"+workerMetrics)
}

// TestWorkerProbesTheAWSStores: the worker's /readyz asks the AWS stores
// (SQS, DynamoDB) with one cheap call each.
func TestWorkerProbesTheAWSStores(t *testing.T) {
	env := awsEnv(t)
	prefix := awstest.Name("ready")
	backend := []string{"--receipts", "s3://" + prefix + "/receipts", "--queue", "sqs://" + prefix, "--tables", "dynamodb://" + prefix + "-"}
	runEnv(t, env, append([]string{"aws", "init"}, backend...)...)
	addr := unusedAddr(t)
	startWorker(t, env, append([]string{"--data-dir", t.TempDir(), "--metrics-listen", addr}, backend...)...)
	checkProbes(t, "http://"+addr)
}

// TestPprofOnATakenPortStopsServe: --pprof-listen on an address in use
// used to log "listening", then an error, and serve went on without
// profiles; it now stops at start, naming the flag.
func TestPprofOnATakenPortStopsServe(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	out := runFails(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--metrics-listen", "off",
		"--worker=false", "--pprof-listen", taken.Addr().String())
	if !strings.Contains(out, "--pprof-listen "+taken.Addr().String()) {
		t.Fatalf("serve with a taken --pprof-listen said %q, want the flag named", out)
	}
}

// TestJSONLogFormatListeningLine: with --log-format json every line serve
// writes, on stdout too, is a JSON object: the address it listens on is in
// one, as "url".
func TestJSONLogFormatListeningLine(t *testing.T) {
	cmd := exec.Command(egressdBinary(t), "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--metrics-listen", "off", "--worker=false", "--log-format", "json")
	cmd.Env = isolatedEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed nothing on stdout")
	}
	var got struct{ Msg, DID, URL string }
	if err := json.Unmarshal([]byte(line), &got); err != nil || !strings.HasPrefix(got.URL, "http://127.0.0.1:") || !strings.HasPrefix(got.DID, "did:key:") {
		t.Fatalf("stdout line %q (%v), want JSON with did and url", line, err)
	}
	if status, body := getWithin(t, got.URL+"/healthz"); status != http.StatusOK {
		t.Fatalf("the url printed does not answer: %d %s", status, body)
	}
}

// TestDeclaredBodyOverLimitOnServe: through the real binary, with its
// read timeouts, a Content-Length past --max-body-bytes is answered 413 at
// once, long before --read-timeout, without a byte of the body sent.
func TestDeclaredBodyOverLimitOnServe(t *testing.T) {
	p := startServe(t, t.TempDir(), "--metrics-listen", "off", "--worker=false", "--read-timeout", "20s")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: 999999999999\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 413 ") {
		t.Fatalf("status line %q, %v; want 413 at once", line, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("413 took %v", d)
	}
}
