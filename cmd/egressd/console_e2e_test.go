package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/billing/stripe/fakestripe"
	"github.com/egressd/egressd/internal/browsertest"
)

// TestMain stops the browser the console test shares once the tests are done.
func TestMain(m *testing.M) { browsertest.Main(m) }

// recorded is one event the tour recorded, as its receipt told it.
type recorded struct {
	customer, space string
	bytes           uint64
	invocation      string
	receipt         string
}

// consoleOverview is what the tour reads of GET /api/overview.
type consoleOverview struct {
	EventsMonth          int64                   `json:"eventsMonth"`
	QueueDepth           int                     `json:"queueDepth"`
	InvocationsPerSecond float64                 `json:"invocationsPerSecond"`
	States               map[billing.State]int64 `json:"states"`
}

// TestConsoleEndToEnd is the README tour seen through the operator console,
// in a real browser, against the real binary: serve bills a fake Stripe,
// alice (two spaces, a Stripe customer) and bob (one space, none) record
// egress with the CLI, and the console shows what the ledger holds. Bob's
// events are unbillable until `customer set` gives him a Stripe customer and
// the Re-drive button on the problems page bills them.
func TestConsoleEndToEnd(t *testing.T) {
	const (
		alice, bob = "did:mailto:example.com:alice", "did:mailto:example.com:bob"
		token      = "console-e2e-token"
		resource   = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	)
	// The browser first: without one the test fails at once, saying how to
	// install it.
	ctx := browsertest.Tab(t, 5*time.Minute)

	fake, err := fakestripe.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddMeter("egress")
	// Both exist at Stripe; only alice's is known to egressd at first.
	fake.AddCustomer("cus_alice")
	fake.AddCustomer("cus_bob")

	data := t.TempDir()
	admin := freeAddr(t)
	srv := startServe(t, data, "--stripe-key", fakestripe.Key, "--stripe-url", fake.URL,
		"--admin-listen", admin, "--admin-token", token, "--worker-wait", "100ms")
	console := "http://" + admin

	// The README tour: spaces, who pays for them, a delegation to the
	// gateway, egress recorded by the gateway.
	gatewayDID, gatewayKey := generateKey(t)
	run(t, "customer", "set", "--data-dir", data, "--customer", alice, "--stripe-customer", "cus_alice")
	spaces := map[string][]uint64{} // space DID -> bytes of its events
	owner := map[string]string{}    // space DID -> customer
	proofs := map[string]string{}   // space DID -> its delegation to the gateway
	var order []string
	for _, s := range []struct {
		customer string
		bytes    []uint64
	}{
		{alice, []uint64{1_048_576, 2_500_000}},
		{alice, []uint64{3_000_000_000}},
		{bob, []uint64{123_456_789, 7}},
	} {
		did, key := generateKey(t)
		run(t, "provision", "--data-dir", data, "--space", did, "--customer", s.customer)
		spaces[did], owner[did] = s.bytes, s.customer
		order = append(order, did)
		proofs[did] = strings.TrimSpace(run(t, "delegate", "--space-key", key, "--audience", gatewayDID))
	}
	servedAt := time.Now().UTC().Truncate(time.Second)
	var events []recorded
	for _, space := range order {
		for _, n := range spaces[space] {
			v := decodeView(t, run(t, "record", "--url", srv.URL, "--key", gatewayKey, "--proof", proofs[space],
				"--resource", resource, "--bytes", strconv.FormatUint(n, 10), "--served-at", servedAt.Format(time.RFC3339)))
			if v.Error != nil || v.Verified == nil || !*v.Verified {
				t.Fatalf("record %d bytes for %s: error %s, verified %v", n, space, v.Error, v.Verified)
			}
			events = append(events, recorded{customer: owner[space], space: space, bytes: n, invocation: v.Invocation, receipt: v.Receipt})
		}
	}
	total := map[string]uint64{}
	count := map[string]int{}
	for _, e := range events {
		total[e.customer] += e.bytes
		total[""] += e.bytes
		count[e.customer]++
		count[""]++
	}

	// The API, with the token, says when the ledger has them all settled.
	o := waitConsole(t, console, token, "every event ledgered and settled", func(o consoleOverview) bool {
		return o.EventsMonth == int64(count[""]) && o.QueueDepth == 0 && o.States[billing.Pending] == 0
	})
	if o.States[billing.Reported] != int64(count[alice]) || o.States[billing.Unbillable] != int64(count[bob]) {
		t.Fatalf("ledger states %v, want alice's %d events reported and bob's %d unbillable", o.States, count[alice], count[bob])
	}
	// serve samples its invocation counter every few seconds: the rate shows
	// the records within a sample or two.
	waitConsole(t, console, token, "invocations per second above zero", func(o consoleOverview) bool { return o.InvocationsPerSecond > 0 })

	// Logged out, the console asks for the token, then shows the overview.
	browsertest.Run(t, ctx, "opening the console", chromedp.Navigate(console+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if got, want := browsertest.Location(t, ctx), console+"/login?next=%2F"; got != want {
		t.Errorf("logged out, landed on %s, want %s", got, want)
	}
	browsertest.Run(t, ctx, "logging in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("daily")))

	// Overview: egress equal to what was recorded, the ledger states, a
	// 30-day chart whose bar for the day served holds it all.
	now := time.Now().UTC()
	today, month := uint64(0), uint64(0)
	eventsToday, eventsMonth := 0, 0
	if billing.Day(now) == billing.Day(servedAt) {
		today, eventsToday = total[""], count[""]
	}
	if billing.Month(now) == billing.Month(servedAt) {
		month, eventsMonth = total[""], count[""]
	}
	browsertest.ExpectTexts(t, ctx, "overview", map[string]string{
		"#egress-today-exact": commas(today), "#events-today": strconv.Itoa(eventsToday),
		"#egress-month-exact": commas(month), "#events-month": strconv.Itoa(eventsMonth),
		"#state-reported": strconv.Itoa(count[alice]), "#state-unbillable": strconv.Itoa(count[bob]),
		"#state-pending": "0", "#state-failed": "0", "#state-rejected": "0",
		"#queue-depth": "0", "#dead-letters": "0",
		// Nothing is pending: billing is not behind. No `billing reconcile` ran.
		"#billing-lag": "none", "#reconcile": "never",
	})
	if inv := browsertest.Text(t, ctx, "#invocations"); !regexp.MustCompile(`^\d+\.\d$`).MatchString(inv) {
		t.Errorf("overview: invocations per second shows %q, want a number with one decimal", inv)
	} else {
		t.Logf("overview: %s invocations per second", inv)
	}
	checkChart(t, ctx, "overview", servedAt, total[""], count[""])
	browsertest.Screenshot(t, ctx, "e2e-overview")

	// Customers: both, biggest first; a click on Egress sorts smallest first.
	browsertest.Run(t, ctx, "opening the customers", chromedp.Click(chromedp.CSS(`header a[href="/customers"]`)),
		chromedp.WaitVisible(chromedp.ID("customers")))
	if got, want := customerColumn(t, ctx, "a.customer"), []string{alice, bob}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers %q, want %q (most egress first)", got, want)
	}
	if got, want := customerColumn(t, ctx, "td.bytes .exact"), []string{commas(total[alice]) + " B", commas(total[bob]) + " B"}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers' egress %q, want %q", got, want)
	}
	if got, want := customerColumn(t, ctx, "td.account"), []string{"stripe:cus_alice", "none"}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers' Stripe accounts %q, want %q", got, want)
	}
	browsertest.Screenshot(t, ctx, "e2e-customers")
	browsertest.Run(t, ctx, "sorting by egress, smallest first", chromedp.Click(chromedp.ID("sort-bytes")),
		chromedp.WaitVisible(chromedp.CSS(`#sort-bytes[href="/customers?order=desc&sort=bytes"]`)))
	if got, want := customerColumn(t, ctx, "a.customer"), []string{bob, alice}; !reflect.DeepEqual(got, want) {
		t.Errorf("customers by egress, ascending %q, want %q", got, want)
	}

	// Alice: her spaces with their bytes, her events linked to their receipts.
	browsertest.Run(t, ctx, "opening alice", chromedp.Click(chromedp.CSS(`#customers a.customer[href="/customers/`+url.PathEscape(alice)+`"]`)),
		chromedp.WaitVisible(chromedp.ID("recent")))
	browsertest.ExpectTexts(t, ctx, "alice", map[string]string{
		"#customer": alice, "#account": "stripe:cus_alice",
		"#bytes-exact": commas(total[alice]), "#events": strconv.Itoa(count[alice]),
	})
	var wantSpaces []string
	for _, space := range order {
		if owner[space] == alice {
			var sum uint64
			for _, n := range spaces[space] {
				sum += n
			}
			wantSpaces = append(wantSpaces, space+" "+commas(sum))
		}
	}
	slices.Sort(wantSpaces)
	gotSpaces := browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#spaces tbody tr')).map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent)`)
	slices.Sort(gotSpaces)
	if !reflect.DeepEqual(gotSpaces, wantSpaces) {
		t.Errorf("alice's spaces %q, want %q", gotSpaces, wantSpaces)
	}
	links := browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#recent a.receipt')).map(a => a.textContent)`)
	var aliceInvocations []string
	for _, e := range events {
		if e.customer == alice {
			aliceInvocations = append(aliceInvocations, e.invocation)
		}
	}
	if got := slices.Sorted(slices.Values(links)); !reflect.DeepEqual(got, slices.Sorted(slices.Values(aliceInvocations))) {
		t.Errorf("alice's recent events link %q, want her invocations %q", links, aliceInvocations)
	}
	checkChart(t, ctx, "alice", servedAt, total[alice], count[alice])
	browsertest.Screenshot(t, ctx, "e2e-customer-alice")

	// Her first event's receipt, signed by the service.
	browsertest.Run(t, ctx, "following alice's first event to its receipt", chromedp.Click(chromedp.CSS(`#recent tbody tr:first-child a.receipt`)),
		chromedp.WaitVisible(chromedp.ID("signature")))
	ran := browsertest.Text(t, ctx, "#ran")
	i := slices.IndexFunc(events, func(e recorded) bool { return e.invocation == ran })
	if i < 0 || events[i].customer != alice {
		t.Fatalf("the receipt page shows invocation %q, not one of alice's", ran)
	}
	if got, want := browsertest.Location(t, ctx), console+"/receipt/"+ran; got != want {
		t.Errorf("receipt page at %s, want %s", got, want)
	}
	serviceDID := strings.TrimSpace(run(t, "id", "--data-dir", data))
	browsertest.ExpectTexts(t, ctx, "receipt", map[string]string{"#receipt-cid": events[i].receipt, "#issuer": serviceDID, "#outcome": "ok"})
	if sig := browsertest.Text(t, ctx, "#signature"); !strings.HasPrefix(sig, "signature valid") {
		t.Errorf("receipt signature: %q, want it valid", sig)
	}
	if res := browsertest.Text(t, ctx, "#result"); !strings.Contains(res, `"bytes": `+strconv.FormatUint(events[i].bytes, 10)) {
		t.Errorf("receipt result %q does not show the event's %d bytes", res, events[i].bytes)
	}
	browsertest.Screenshot(t, ctx, "e2e-receipt")

	// Problems: bob's events, unbillable for want of an account.
	browsertest.Run(t, ctx, "opening the problems", chromedp.Click(chromedp.CSS(`header a[href="/problems"]`)),
		chromedp.WaitVisible(chromedp.ID("problems")))
	groups := browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#problems tbody tr')).map(r => Array.from(r.cells).slice(0, 4).map(c => c.textContent.trim()).join(' | '))`)
	wantGroup := strings.Join([]string{bob, "unbillable", billing.ReasonNoAccount, strconv.Itoa(count[bob])}, " | ")
	if !reflect.DeepEqual(groups, []string{wantGroup}) {
		t.Fatalf("problem groups %q, want [%q]", groups, wantGroup)
	}
	browsertest.Screenshot(t, ctx, "e2e-problems")

	// The operator gives bob a Stripe customer while serve runs and presses
	// Re-drive at once: the re-drive asks for bob's account afresh.
	run(t, "customer", "set", "--data-dir", data, "--customer", bob, "--stripe-customer", "cus_bob")
	browsertest.Run(t, ctx, "pressing Re-drive", chromedp.Click(chromedp.CSS(`#problems button.redrive`)),
		chromedp.WaitVisible(chromedp.ID("flash")))
	if got, want := browsertest.Text(t, ctx, "#flash"), fmt.Sprintf("re-queued %d events of %s (unbillable: %s)", count[bob], bob, billing.ReasonNoAccount); got != want {
		t.Errorf("re-drive confirmation %q, want %q", got, want)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#problems button.redrive').length`); n != 0 {
		t.Errorf("%d problem groups left after the re-drive, want none", n)
	}
	browsertest.Screenshot(t, ctx, "e2e-problems-after-redrive")

	browsertest.Run(t, ctx, "opening the overview", chromedp.Click(chromedp.CSS(`header a[href="/"]`)), chromedp.WaitVisible(chromedp.ID("states")))
	browsertest.ExpectTexts(t, ctx, "overview after the re-drive", map[string]string{
		"#state-reported": strconv.Itoa(count[""]), "#state-unbillable": "0", "#egress-month-exact": commas(month),
	})
	browsertest.Screenshot(t, ctx, "e2e-overview-after-redrive")

	// What Stripe bills is what was recorded, each customer once.
	if got, want := fake.Totals(), map[string]int64{"cus_alice": int64(total[alice]), "cus_bob": int64(total[bob])}; !reflect.DeepEqual(got, want) {
		t.Errorf("Stripe bills %v, want %v", got, want)
	}
	srv.stop(t)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitConsole polls the console's /api/overview until done, failing after
// two minutes (a hang, not a timing assertion).
func waitConsole(t *testing.T, console, token, what string, done func(consoleOverview) bool) consoleOverview {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, console+"/api/overview", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		var o consoleOverview
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /api/overview: %s", resp.Status)
			}
			err = json.NewDecoder(resp.Body).Decode(&o)
			resp.Body.Close()
		}
		if err == nil && done(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last overview %+v (%v)", what, o, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// customerColumn is the text of sel in each row of the customers table.
func customerColumn(t *testing.T, ctx context.Context, sel string) []string {
	t.Helper()
	return browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#customers tbody tr')).map(r => r.querySelector('`+sel+`').textContent)`)
}

// checkChart checks the 30-day chart as the browser laid it out: 30 bars,
// the one for the day served titled with its exact bytes and drawn.
func checkChart(t *testing.T, ctx context.Context, page string, servedAt time.Time, bytes uint64, events int) {
	t.Helper()
	type bar struct {
		Title  string  `json:"title"`
		Height float64 `json:"height"`
	}
	bars := browsertest.Eval[[]bar](t, ctx, `Array.from(document.querySelectorAll('svg#daily rect.bar')).map(b => ({title: b.querySelector('title').textContent, height: b.getBBox().height}))`)
	if len(bars) != 30 {
		t.Fatalf("%s: the chart has %d bars, want 30", page, len(bars))
	}
	day := billing.Day(servedAt)
	prefix, suffix := fmt.Sprintf("%s: %s bytes (", day, commas(bytes)), fmt.Sprintf(", %d events", events)
	i := slices.IndexFunc(bars, func(b bar) bool { return strings.HasPrefix(b.Title, day+":") })
	if i < 0 {
		t.Fatalf("%s: no bar for %s in the chart", page, day)
	}
	if b := bars[i]; !strings.HasPrefix(b.Title, prefix) || !strings.HasSuffix(b.Title, suffix) || b.Height < 100 {
		t.Errorf("%s: the bar of %s is %+v, want it tall and titled %q...%q", page, day, b, prefix, suffix)
	}
}

// commas writes n as the console's exact figures do: 1,234,567.
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
