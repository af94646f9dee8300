package console_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/console"
)

// consoleServer serves a console over a fake source on 127.0.0.1.
type consoleServer struct {
	*httptest.Server
	src  *fakeSource
	rs   testReceipts
	logs *logBuffer
}

// logBuffer collects the console's log lines; the server writes from its
// own goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startConsole(t testing.TB, token string) *consoleServer {
	t.Helper()
	rs := newReceipts(t)
	src := newFakeSource(rs)
	logs := &logBuffer{}
	srv := httptest.NewServer(console.New(console.Config{
		Source: src, Service: rs.service.Verifier(), Token: token,
		Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(logs, nil)),
	}))
	t.Cleanup(srv.Close)
	return &consoleServer{Server: srv, src: src, rs: rs, logs: logs}
}

// browserClient keeps cookies and does not follow redirects, so a test sees
// each answer as it is.
func browserClient(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, c *http.Client, method, u string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func get(t testing.TB, c *http.Client, u string, header ...string) response {
	t.Helper()
	return do(t, c, http.MethodGet, u, nil, header...)
}

func postForm(t testing.TB, c *http.Client, u string, form url.Values) response {
	t.Helper()
	return do(t, c, http.MethodPost, u, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

func mustContain(t testing.TB, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
}

func TestPagesShowTheFigures(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	for _, tc := range []struct {
		path  string
		wants []string
	}{
		{"/", []string{`id="egress-today">2.5 GB<`, `id="egress-today-exact">2,500,000,000<`, `id="egress-month">6.2 GB<`, `id="events-month">1,237<`,
			`id="invocations">12.3<`, `id="queue-depth">17<`, `id="dead-letters" class="bad">2<`, `id="billing-lag">3h12m<`,
			`MISMATCH`, `2 batches missing at Stripe`, `id="state-reported">1,120<`, `id="state-rejected">0<`,
			`<title>2026-03-15: 2,900,000,000 bytes (2.9 GB), 29 events</title>`, `>3.0 GB</text>`}},
		{"/customers", []string{`href="/customers/did:mailto:example.com:alice"`, `cus_alice`, `<span class="human">1.2 GB</span><div class="exact">1,234,567,890 B</div>`, `988 kB`}},
		{"/customers/" + url.PathEscape(alice), []string{`id="bytes">1.2 GB<`, `id="bytes-exact">1,234,567,890<`, `did:key:z6MkSpaceTwo`,
			`href="/receipt/` + s.rs.valid.Ran().Link().String() + `"`, `stripe unreachable`}},
		{"/problems", []string{`stripe unreachable`, billing.ReasonNoAccount, `value="failed"`, `>Re-drive<`, `12 MB`, `12,000,000 B`, `2d0h ago`}},
		{"/receipt/" + s.rs.valid.Ran().Link().String(), []string{`signature valid`, s.rs.service.DID().String(), s.rs.valid.Root().Link().String(), `&#34;space&#34;`}},
		{"/receipt/" + s.rs.forged.Ran().Link().String(), []string{`INVALID`}},
		{"/receipt/" + s.rs.failed.Ran().Link().String(), []string{`signature valid`, `ConsumerNotFound`, `class="bad">error<`}},
	} {
		res := get(t, c, s.URL+tc.path)
		if res.status != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200: %s", tc.path, res.status, res.body)
			continue
		}
		mustContain(t, "GET "+tc.path, res.body, tc.wants...)
	}
}

func TestChartHasABarPerDay(t *testing.T) {
	s := startConsole(t, "")
	for _, path := range []string{"/", "/customers/" + url.PathEscape(alice), "/customers/" + url.PathEscape(bob)} {
		body := get(t, browserClient(t), s.URL+path).body
		if n := strings.Count(body, `<rect class="bar"`); n != 30 {
			t.Errorf("GET %s: %d bars, want 30", path, n)
		}
	}
}

func TestHostileCustomerIsEscaped(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	for _, path := range []string{"/customers", "/problems", "/customers/" + url.PathEscape(hostile)} {
		res := get(t, c, s.URL+path)
		if res.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.status)
		}
		if strings.Contains(res.body, "<script>") {
			t.Errorf("GET %s: the customer's <script> reached the page unescaped", path)
		}
		mustContain(t, "GET "+path, res.body, "did:mailto:x.com:&lt;script&gt;")
	}
	mustContain(t, "the customers page", get(t, c, s.URL+"/customers").body, `href="/customers/did:mailto:x.com:%3Cscript%3E"`)
	// An escaped slash stays inside the one path segment a customer is.
	for _, path := range []string{"/customers/nobody", "/customers/did:mailto:x.com%2F..%2Fevil"} {
		if res := get(t, c, s.URL+path); res.status != http.StatusNotFound || !strings.Contains(res.body, "No such customer.") {
			t.Errorf("GET %s: %d, want the console's 404 for an unknown customer", path, res.status)
		}
	}
}

func TestCustomersSort(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	order := func(q string) []string {
		t.Helper()
		res := get(t, c, s.URL+"/customers"+q)
		if res.status != http.StatusOK {
			t.Fatalf("GET /customers%s: %d", q, res.status)
		}
		var names []string
		for _, m := range regexp.MustCompile(`class="customer" href="[^"]*">([^<]*)<`).FindAllStringSubmatch(res.body, -1) {
			names = append(names, m[1])
		}
		return names
	}
	h := "did:mailto:x.com:&lt;script&gt;"
	for q, want := range map[string][]string{
		"":                            {h, alice, bob},
		"?sort=bytes&order=asc":       {bob, alice, h},
		"?sort=customer":              {alice, bob, h},
		"?sort=customer&order=desc":   {h, bob, alice},
		"?sort=events&order=desc":     {alice, bob, h},
		"?sort=unbillable&order=desc": {bob, h, alice},
		"?sort=account&order=asc":     {h, alice, bob},
	} {
		if got := order(q); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("/customers%s: %v, want %v", q, got, want)
		}
	}
	body := get(t, c, s.URL+"/customers?sort=events&order=desc").body
	mustContain(t, "the sorted page", body, `id="sort-events" href="/customers?order=asc&amp;sort=events"`, `id="sort-bytes" href="/customers?order=desc&amp;sort=bytes"`)
	for _, q := range []string{"?sort=drop+table", "?order=sideways"} {
		if res := get(t, c, s.URL+"/customers"+q); res.status != http.StatusBadRequest {
			t.Errorf("/customers%s: %d, want 400", q, res.status)
		}
	}
}

func TestRedriveForm(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	page := get(t, c, s.URL+"/problems").body
	key := url.Values{"customer": {alice}, "state": {"failed"}, "reason": {"stripe unreachable"}}

	// Without the token, with a wrong one, and from a browser without the cookie.
	for name, tok := range map[string]string{"missing": "", "wrong": strings.Repeat("ab", 32)} {
		f := url.Values{"csrf": {tok}}
		for k, v := range key {
			f[k] = v
		}
		if res := postForm(t, c, s.URL+"/problems/redrive", f); res.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, res.status)
		}
	}
	stolen := url.Values{"csrf": {csrfOf(t, page)}}
	for k, v := range key {
		stolen[k] = v
	}
	if res := postForm(t, browserClient(t), s.URL+"/problems/redrive", stolen); res.status != http.StatusForbidden {
		t.Errorf("a token without its cookie: %d, want 403", res.status)
	}
	if got := s.src.redriven(); len(got) != 0 {
		t.Fatalf("rejected posts re-drove %v", got)
	}

	res := postForm(t, c, s.URL+"/problems/redrive", stolen)
	if res.status != http.StatusSeeOther {
		t.Fatalf("re-drive: %d, want 303: %s", res.status, res.body)
	}
	want := console.ProblemKey{Customer: alice, State: billing.Failed, Reason: "stripe unreachable"}
	if got := s.src.redriven(); len(got) != 1 || got[0] != want {
		t.Fatalf("re-drove %v, want [%v]", got, want)
	}
	done := get(t, c, s.URL+res.header.Get("Location")).body
	mustContain(t, "the page after the re-drive", done, `id="flash" role="status">re-queued 50 events of did:mailto:example.com:alice (failed: stripe unreachable)<`)
	if strings.Contains(done, `value="stripe unreachable"`) {
		t.Error("the re-driven group is still listed")
	}
	// A forged confirmation is not shown.
	forged := get(t, c, s.URL+"/problems?done=re-queued+9999+events&sig=00").body
	if strings.Contains(forged, "9999") {
		t.Error("an unsigned confirmation was shown")
	}
	bad := url.Values{"csrf": {csrfOf(t, page)}, "customer": {alice}, "state": {"reported"}}
	if res := postForm(t, c, s.URL+"/problems/redrive", bad); res.status != http.StatusBadRequest {
		t.Errorf("re-drive of reported entries: %d, want 400", res.status)
	}
}

func TestHostileRequests(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	for _, tc := range []struct {
		method, path string
		status       int
		json         bool
	}{
		{"GET", "/nope", 404, false},
		{"GET", "/api/nope", 404, true},
		{"GET", "/receipt/not-a-cid", 400, false},
		{"GET", "/api/receipt/not-a-cid", 400, true},
		{"GET", "/receipt/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", 404, false},
		{"GET", "/api/receipt/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", 404, true},
		{"GET", "/api/customers/nobody", 404, true},
		{"DELETE", "/customers", 405, false},
		{"GET", "/problems/redrive", 405, false},
		{"POST", "/api/overview", 405, true},
		{"GET", "/api/redrive", 405, true},
	} {
		res := do(t, c, tc.method, s.URL+tc.path, nil)
		if res.status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.status, tc.status)
		}
		if tc.json {
			var e struct {
				Error struct{ Name, Message string }
			}
			if json.Unmarshal([]byte(res.body), &e) != nil || e.Error.Name == "" || e.Error.Message == "" {
				t.Errorf("%s %s: not a JSON error: %s", tc.method, tc.path, res.body)
			}
		}
	}
	big := do(t, c, "POST", s.URL+"/api/redrive", strings.NewReader(`{"customer":"`+strings.Repeat("x", 100<<10)+`"}`), "Content-Type", "application/json")
	if big.status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100 KiB body: %d, want 413", big.status)
	}
	bigForm := postForm(t, c, s.URL+"/problems/redrive", url.Values{"customer": {strings.Repeat("x", 100<<10)}})
	if bigForm.status != http.StatusBadRequest {
		t.Errorf("a 100 KiB form: %d, want 400", bigForm.status)
	}
	res := get(t, c, s.URL+"/")
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := res.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	if got := get(t, c, s.URL+"/api/overview").header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("API Cache-Control: %q", got)
	}
}

// A failing source shows a generic message: its error stays in the log.
func TestSourceErrorsAreNotShown(t *testing.T) {
	s := startConsole(t, "")
	s.src.fail = errors.New("dial tcp 10.0.0.7:5432: secret internals")
	for _, path := range []string{"/", "/customers", "/problems", "/customers/" + url.PathEscape(alice), "/api/overview", "/api/customers", "/api/problems"} {
		res := get(t, browserClient(t), s.URL+path)
		if res.status != http.StatusInternalServerError || strings.Contains(res.body, "secret internals") {
			t.Errorf("GET %s: %d, body %q; want 500 without the error", path, res.status, res.body)
		}
	}
	if n := strings.Count(s.logs.String(), "secret internals"); n != 7 {
		t.Errorf("the source's error was logged %d times, want 7 (once per request):\n%s", n, s.logs.String())
	}
}

// Without a service key the console says it did not check, rather than
// calling a receipt valid or invalid.
func TestReceiptWithoutServiceKey(t *testing.T) {
	rs := newReceipts(t)
	srv := httptest.NewServer(console.New(console.Config{Source: newFakeSource(rs)}))
	t.Cleanup(srv.Close)
	res := get(t, browserClient(t), srv.URL+"/receipt/"+rs.valid.Ran().Link().String())
	mustContain(t, "the receipt page", res.body, "not checked: no service key configured")
	if strings.Contains(res.body, "signature valid") || strings.Contains(res.body, "INVALID") {
		t.Error("the page judged a signature it could not check")
	}
	api := get(t, browserClient(t), srv.URL+"/api/receipt/"+rs.valid.Ran().Link().String())
	if strings.Contains(api.body, `"verified"`) {
		t.Errorf("the API reports verified without a key: %s", api.body)
	}
}
