package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/invocation"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/server"
)

// TestEveryErrorIsJSON: what no route takes (an unknown path, a receipt
// without its CID, a method a path does not serve) is answered in the
// {name, message} JSON of every other error, as the README says, not in
// net/http's text.
func TestEveryErrorIsJSON(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct {
		method, path string
		status       int
		name, allow  string
	}{
		{"GET", "/nope", http.StatusNotFound, "NotFound", ""},
		{"POST", "/nope", http.StatusNotFound, "NotFound", ""},
		{"GET", "/receipt/", http.StatusBadRequest, "InvalidCID", ""},
		{"GET", "/receipt/not-a-cid", http.StatusBadRequest, "InvalidCID", ""},
		{"PUT", "/", http.StatusMethodNotAllowed, "MethodNotAllowed", "GET, HEAD, POST"},
		{"DELETE", "/receipt/bafyrei", http.StatusMethodNotAllowed, "MethodNotAllowed", "GET, HEAD"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "MethodNotAllowed", "GET, HEAD"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, h.http.URL+c.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct{ Name, Message string }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if res.StatusCode != c.status || body.Name != c.name || body.Message == "" {
				t.Fatalf("%d %+v, want %d %s with a message", res.StatusCode, body, c.status, c.name)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := res.Header.Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
		})
	}
}

// TestMalformedContentLengthIsRefusedByNetHTTP: a Content-Length that is not
// a number never reaches the handler: net/http reads the request line and
// headers itself and answers 400 in plain text, with no hook to change the
// body (http.Server has none for requests it cannot parse). What holds: it
// is refused at once, the connection is closed, and nothing of the service
// is said.
func TestMalformedContentLengthIsRefusedByNetHTTP(t *testing.T) {
	h := newHarness(t, nil)
	for _, length := range []string{"abc", "-1", "1, 2"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.http.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.ipld.car\r\nContent-Length: %s\r\n\r\n", length)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("Content-Length %q: the connection was not closed: %v", length, err)
		}
		if !strings.HasPrefix(string(answer), "HTTP/1.1 400 ") {
			t.Fatalf("Content-Length %q: %q, want 400", length, answer)
		}
	}
}

// TestReadinessAndStatusMetrics: a store that cannot be written makes
// /readyz 503 (naming the store, not its error) while /healthz stays ok,
// and the 503s it causes show in /metrics by route and status.
func TestReadinessAndStatusMetrics(t *testing.T) {
	h := newHarness(t, nil)
	if status, body := get(t, h.http.URL+"/readyz"); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz with the stores up: %d %q", status, body)
	}
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	message := func(bytes int64) []byte {
		body, err := client.EncodeMessage([]invocation.Invocation{recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), bytes, time.Now(), dlg)})
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	if status, body := post(t, h.http.URL, message(10)); status != http.StatusOK {
		t.Fatalf("record: %d %s", status, body)
	}

	// The data directory's files go away under the server, as on a full
	// or failed disk.
	h.journal.Close()
	if status, body := get(t, h.http.URL+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the stores down: %d %s, want 200 (liveness only)", status, body)
	}
	// The answer of the probe before is kept briefly: wait it out.
	deadline := time.Now().Add(10 * time.Second)
	var status int
	var body string
	for time.Now().Before(deadline) {
		if status, body = get(t, h.http.URL+"/readyz"); status == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var answer struct{ Name, Message string }
	if err := json.Unmarshal([]byte(body), &answer); status != http.StatusServiceUnavailable || err != nil || answer.Name != "NotReady" ||
		!strings.Contains(answer.Message, "store") || strings.Contains(answer.Message, "sql") {
		t.Fatalf("/readyz with the stores down: %d %s, want 503 NotReady naming the store and no Go error", status, body)
	}
	if status, body := post(t, h.http.URL, message(11)); status != http.StatusServiceUnavailable {
		t.Fatalf("record with the stores down: %d %s, want 503", status, body)
	}

	_, metrics := get(t, h.metrics.URL+"/metrics")
	for _, want := range []string{
		`egressd_requests_total{route="invoke",status="200"} 1`,
		`egressd_requests_total{route="invoke",status="503"} 1`,
		`egressd_requests_total{route="healthz",status="200"} 1`,
		`egressd_requests_total{route="readyz",status="503"}`,
		`egressd_request_duration_seconds_count{status="200"} 1`,
		`egressd_request_duration_seconds_count{status="503"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAccessLog: one info line per request, with what an operator needs to
// follow it (method, path, status, bytes, duration, and for a message its
// invocations and how each ended), and each refused invocation at debug
// with its failure's name.
func TestAccessLog(t *testing.T) {
	var logs lockedBuffer
	h := newHarness(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	gateway := newKey(t)
	space := h.provision(alice)
	dlg := delegate(t, space, gateway.DID(), []string{"space/content/serve/*"}, time.Time{})
	body, err := client.EncodeMessage([]invocation.Invocation{
		recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 10, time.Now(), dlg),
		recordFrom(t, gateway, h.service.DID(), capabilities.EgressRecord, space.DID(), 0, time.Now(), dlg),
	})
	if err != nil {
		t.Fatal(err)
	}
	if status, out := post(t, h.http.URL, body); status != http.StatusOK {
		t.Fatalf("record: %d %s", status, out)
	}
	get(t, h.http.URL+"/nope")

	text := logs.String()
	for _, want := range []string{
		`level=INFO msg=request method=POST path=/ status=200 bytes=`,
		`invocations=2 outcomes="MalformedCapability=1 ok=1"`,
		`level=DEBUG msg="invocation refused"`,
		`failure=MalformedCapability`,
		`level=INFO msg=request method=GET path=/nope status=404`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "msg=request "); n != 2 {
		t.Errorf("%d access lines for 2 requests:\n%s", n, text)
	}
}

// lockedBuffer is a log destination the server's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}
