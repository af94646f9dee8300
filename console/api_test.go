package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// keysOf decodes a JSON object and returns its keys, sorted.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func getJSON(t *testing.T, s *consoleServer, path string, into any) json.RawMessage {
	t.Helper()
	res := get(t, browserClient(t), s.URL+path)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s: %s", path, res.status, res.header.Get("Content-Type"), res.body)
	}
	if into != nil {
		if err := json.Unmarshal([]byte(res.body), into); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return json.RawMessage(res.body)
}

func TestAPIShapes(t *testing.T) {
	s := startConsole(t, "")
	var o struct {
		EgressToday       uint64           `json:"egressToday"`
		BillingLagSeconds float64          `json:"billingLagSeconds"`
		States            map[string]int64 `json:"states"`
		LastReconcile     struct{ OK bool }
		Daily             []json.RawMessage
	}
	raw := getJSON(t, s, "/api/overview", &o)
	wantKeys := []string{"billingLagSeconds", "daily", "deadLetters", "egressMonth", "egressToday", "eventsMonth", "eventsToday", "invocationsPerSecond", "lastReconcile", "queueDepth", "states"}
	if got := keysOf(t, raw); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("overview keys %v, want %v", got, wantKeys)
	}
	if o.EgressToday != 2_500_000_000 || o.BillingLagSeconds != 11520 || o.States["rejected"] != 0 || len(o.States) != 5 || len(o.Daily) != 30 {
		t.Errorf("overview %+v", o)
	}
	if got := keysOf(t, o.Daily[0]); !reflect.DeepEqual(got, []string{"bytes", "date", "events"}) {
		t.Errorf("day keys %v", got)
	}

	var cs struct{ Customers []json.RawMessage }
	getJSON(t, s, "/api/customers?sort=customer", &cs)
	if len(cs.Customers) != 3 || !reflect.DeepEqual(keysOf(t, cs.Customers[0]), []string{"account", "bytes", "customer", "events", "states"}) {
		t.Errorf("customers %s", cs.Customers)
	}
	var first struct{ Customer string }
	json.Unmarshal(cs.Customers[0], &first)
	if first.Customer != alice {
		t.Errorf("sorted by customer, first is %q", first.Customer)
	}

	var d struct {
		Customer string
		Recent   []json.RawMessage
		Spaces   []json.RawMessage
	}
	raw = getJSON(t, s, "/api/customers/"+url.PathEscape(hostile), &d)
	if d.Customer != hostile || d.Recent == nil {
		t.Errorf("hostile customer detail: %s", raw)
	}
	getJSON(t, s, "/api/customers/"+url.PathEscape(alice), &d)
	if got := keysOf(t, d.Recent[1]); !reflect.DeepEqual(got, []string{"batch", "bytes", "cause", "customer", "reason", "recordedAt", "resource", "servedAt", "space", "state", "updatedAt"}) {
		t.Errorf("entry keys %v", got)
	}

	var ps struct{ Problems []json.RawMessage }
	getJSON(t, s, "/api/problems", &ps)
	if len(ps.Problems) != 3 || !reflect.DeepEqual(keysOf(t, ps.Problems[0]), []string{"bytes", "customer", "events", "oldest", "reason", "state"}) {
		t.Errorf("problems %s", ps.Problems)
	}

	var r struct {
		Receipt, Invocation, Issuer string
		Ok                          map[string]any
		Verified                    *bool
	}
	getJSON(t, s, "/api/receipt/"+s.rs.valid.Ran().Link().String(), &r)
	if r.Invocation != s.rs.valid.Ran().Link().String() || r.Issuer != s.rs.service.DID().String() || r.Ok == nil || r.Verified == nil || !*r.Verified {
		t.Errorf("receipt %+v", r)
	}
	getJSON(t, s, "/api/receipt/"+s.rs.forged.Ran().Link().String(), &r)
	if r.Verified == nil || *r.Verified {
		t.Errorf("forged receipt verified: %+v", r)
	}
}

func TestAPIRedrive(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	post := func(body string, header ...string) response {
		return do(t, c, "POST", s.URL+"/api/redrive", strings.NewReader(body), append([]string{"Content-Type", "application/json"}, header...)...)
	}
	for body, status := range map[string]int{
		`{"customer":"` + alice + `","state":"pending","reason":""}`: http.StatusBadRequest,
		`{"customer":"","state":"failed"}`:                           http.StatusBadRequest,
		`{"customer":"x","state":"failed","extra":1}`:                http.StatusBadRequest,
		`not json`: http.StatusBadRequest,
	} {
		if res := post(body); res.status != status || !strings.Contains(res.body, `"BadRequest"`) {
			t.Errorf("%s: %d %s, want %d", body, res.status, res.body, status)
		}
	}
	if res := do(t, c, "POST", s.URL+"/api/redrive", strings.NewReader(`{}`), "Content-Type", "text/plain"); res.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", res.status)
	}
	if n := len(s.src.redriven()); n != 0 {
		t.Fatalf("bad requests re-drove %d groups", n)
	}
	res := post(`{"customer":"` + alice + `","state":"failed","reason":"stripe unreachable"}`)
	var out struct {
		Requeued int
		Message  string
	}
	if json.Unmarshal([]byte(res.body), &out); res.status != http.StatusOK || out.Requeued != 50 || out.Message != "re-queued 50 events of "+alice+" (failed: stripe unreachable)" {
		t.Errorf("re-drive: %d %s", res.status, res.body)
	}
	// The same group again: nothing left it, and the answer says why that may be.
	res = post(`{"customer":"` + alice + `","state":"failed","reason":"stripe unreachable"}`)
	if json.Unmarshal([]byte(res.body), &out); res.status != http.StatusOK || out.Requeued != 0 ||
		!strings.HasPrefix(out.Message, "no event of "+alice+" left the group (failed: stripe unreachable): if its cause is fixed") {
		t.Errorf("re-drive of a group with nothing left to move: %d %s", res.status, res.body)
	}
	var o struct{ States map[string]int64 }
	getJSON(t, s, "/api/overview", &o)
	if o.States["failed"] != 0 || o.States["pending"] != 100 {
		t.Errorf("after the re-drive, states %v", o.States)
	}
}
