package console_test

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/console"
	"github.com/egressd/egressd/internal/browsertest"
)

// TestMain stops the one browser the browser tests share once they are done.
func TestMain(m *testing.M) { browsertest.Main(m) }

// barsJS reads the chart as the browser laid it out: how many bars, and the
// last one's tooltip and drawn height.
const barsJS = `(() => {
	const bars = document.querySelectorAll('svg#daily rect.bar');
	const last = bars[bars.length - 1];
	return {n: bars.length, title: last.querySelector('title').textContent, height: last.getBBox().height};
})()`

type bars struct {
	N      int     `json:"n"`
	Title  string  `json:"title"`
	Height float64 `json:"height"`
}

func TestBrowserOverview(t *testing.T) {
	t.Parallel()
	s := startConsole(t, "")
	ctx := browsertest.Tab(t, 45*time.Second)
	browsertest.Run(t, ctx, "opening the overview", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("daily")))
	browsertest.ExpectTexts(t, ctx, "overview", map[string]string{
		"#egress-today": "2.5 GB", "#egress-today-exact": "2,500,000,000", "#events-today": "400",
		"#egress-month": "6.2 GB", "#egress-month-exact": "6,235,555,544", "#events-month": "1,237",
		"#invocations": "12.3", "#queue-depth": "17", "#dead-letters": "2", "#billing-lag": "3h12m",
		"#reconcile": "MISMATCH", "#reconcile-summary": "2026-03-15 11:00:00 UTC: 2 batches missing at Stripe",
		"#state-pending": "50", "#state-reported": "1,120", "#state-unbillable": "17", "#state-failed": "50", "#state-rejected": "0",
	})
	b := browsertest.Eval[bars](t, ctx, barsJS)
	if b.N != 30 || b.Title != "2026-03-15: 2,900,000,000 bytes (2.9 GB), 29 events" || b.Height < 100 {
		t.Errorf("chart: %+v, want 30 bars, the last one tall and titled with today's exact bytes", b)
	}
	ticks := browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('svg#daily text.tick')).map(e => e.textContent)`)
	if !reflect.DeepEqual(ticks, []string{"0 B", "1.0 GB", "2.0 GB", "3.0 GB"}) {
		t.Errorf("axis labels %v", ticks)
	}
	browsertest.Screenshot(t, ctx, "overview")
}

func customerOrder(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#customers a.customer')).map(a => a.textContent)`)
}

func TestBrowserCustomersSortAndEscape(t *testing.T) {
	t.Parallel()
	s := startConsole(t, "")
	ctx := browsertest.Tab(t, 45*time.Second)
	browsertest.Run(t, ctx, "opening the customers", chromedp.Navigate(s.URL+"/customers"), chromedp.WaitVisible(chromedp.ID("customers")))
	if got, want := customerOrder(t, ctx), []string{hostile, alice, bob}; !reflect.DeepEqual(got, want) {
		t.Errorf("default order (egress, biggest first) %q, want %q", got, want)
	}
	browsertest.ExpectTexts(t, ctx, "customers", map[string]string{"#customers tbody tr:nth-child(2) td.bytes .human": "1.2 GB", "#customers tbody tr:nth-child(2) td.bytes .exact": "1,234,567,890 B", "#customers tbody tr:nth-child(2) td.state-failed": "50"})
	browsertest.Screenshot(t, ctx, "customers")

	browsertest.Run(t, ctx, "sorting by customer", chromedp.Click(chromedp.ID("sort-customer")),
		chromedp.WaitVisible(chromedp.CSS(`#sort-customer[href="/customers?order=desc&sort=customer"]`)))
	if got, want := customerOrder(t, ctx), []string{alice, bob, hostile}; !reflect.DeepEqual(got, want) {
		t.Errorf("by customer %q, want %q", got, want)
	}
	browsertest.Run(t, ctx, "sorting by customer, descending", chromedp.Click(chromedp.ID("sort-customer")),
		chromedp.WaitVisible(chromedp.CSS(`#sort-customer[href="/customers?order=asc&sort=customer"]`)))
	if got, want := customerOrder(t, ctx), []string{hostile, bob, alice}; !reflect.DeepEqual(got, want) {
		t.Errorf("by customer, descending %q, want %q", got, want)
	}

	// The hostile name is shown as text and its link finds the customer.
	browsertest.Run(t, ctx, "opening the hostile customer", chromedp.Click(chromedp.CSS(`#customers tbody tr:first-child a.customer`)),
		chromedp.WaitVisible(chromedp.ID("customer")))
	if got := browsertest.Text(t, ctx, "#customer"); got != hostile {
		t.Errorf("customer page shows %q, want %q", got, hostile)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('main script').length`); n != 0 {
		t.Errorf("the hostile name made %d script elements", n)
	}
	if got, want := browsertest.Location(t, ctx), s.URL+"/customers/did:mailto:x.com:%3Cscript%3E"; got != want {
		t.Errorf("location %s, want %s", got, want)
	}
}

func TestBrowserCustomerAndReceipts(t *testing.T) {
	t.Parallel()
	s := startConsole(t, "")
	ctx := browsertest.Tab(t, 45*time.Second)
	browsertest.Run(t, ctx, "opening a customer", chromedp.Navigate(s.URL+"/customers/"+url.PathEscape(alice)), chromedp.WaitVisible(chromedp.ID("daily")))
	browsertest.ExpectTexts(t, ctx, "customer", map[string]string{
		"#customer": alice, "#account": "cus_alice", "#bytes": "1.2 GB", "#bytes-exact": "1,234,567,890", "#events": "1,200",
		"#spaces tbody tr:nth-child(2) td:first-child": "did:key:z6MkSpaceTwo",
	})
	if b := browsertest.Eval[bars](t, ctx, barsJS); b.N != 30 {
		t.Errorf("customer chart has %d bars, want 30", b.N)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('#recent a.receipt').length`); n != 3 {
		t.Errorf("%d receipt links, want 3", n)
	}
	browsertest.Screenshot(t, ctx, "customer")

	browsertest.Run(t, ctx, "following the first event to its receipt", chromedp.Click(chromedp.CSS(`#recent tbody tr:first-child a.receipt`)),
		chromedp.WaitVisible(chromedp.ID("signature")))
	browsertest.ExpectTexts(t, ctx, "receipt", map[string]string{
		"#ran": s.rs.valid.Ran().Link().String(), "#receipt-cid": s.rs.valid.Root().Link().String(),
		"#issuer": s.rs.service.DID().String(), "#outcome": "ok",
	})
	if sig := browsertest.Text(t, ctx, "#signature"); !strings.HasPrefix(sig, "signature valid") {
		t.Errorf("signature: %q, want it valid", sig)
	}
	if res := browsertest.Text(t, ctx, "#result"); !strings.Contains(res, `"space": "did:key:`) {
		t.Errorf("result %q does not show the space", res)
	}
	browsertest.Screenshot(t, ctx, "receipt")

	browsertest.Run(t, ctx, "opening a receipt signed by someone else", chromedp.Navigate(s.URL+"/receipt/"+s.rs.forged.Ran().Link().String()), chromedp.WaitVisible(chromedp.ID("signature")))
	if sig := browsertest.Text(t, ctx, "#signature"); !strings.HasPrefix(sig, "INVALID") {
		t.Errorf("signature of a foreign receipt: %q, want INVALID", sig)
	}
	browsertest.Run(t, ctx, "opening a failure receipt", chromedp.Navigate(s.URL+"/receipt/"+s.rs.failed.Ran().Link().String()), chromedp.WaitVisible(chromedp.ID("result")))
	if res := browsertest.Text(t, ctx, "#result"); !strings.Contains(res, `"name": "ConsumerNotFound"`) {
		t.Errorf("failure receipt shows %q", res)
	}
	browsertest.Screenshot(t, ctx, "receipt-error")
}

func TestBrowserRedrive(t *testing.T) {
	t.Parallel()
	s := startConsole(t, "")
	ctx := browsertest.Tab(t, 45*time.Second)
	browsertest.Run(t, ctx, "opening the problems", chromedp.Navigate(s.URL+"/problems"), chromedp.WaitVisible(chromedp.ID("problems")))
	rows := `document.querySelectorAll('#problems tbody tr').length`
	if n := browsertest.Eval[int](t, ctx, rows); n != 3 {
		t.Fatalf("%d problem groups, want 3", n)
	}
	browsertest.Screenshot(t, ctx, "problems")

	browsertest.Run(t, ctx, "pressing Re-drive", chromedp.Click(chromedp.CSS(`#problems form:has(input[value="stripe unreachable"]) button.redrive`)),
		chromedp.WaitVisible(chromedp.ID("flash")))
	if got, want := browsertest.Text(t, ctx, "#flash"), "re-queued 50 events of "+alice+" (failed: stripe unreachable)"; got != want {
		t.Errorf("confirmation %q, want %q", got, want)
	}
	if n := browsertest.Eval[int](t, ctx, rows); n != 2 {
		t.Errorf("%d problem groups after the re-drive, want 2", n)
	}
	want := console.ProblemKey{Customer: alice, State: billing.Failed, Reason: "stripe unreachable"}
	if got := s.src.redriven(); !reflect.DeepEqual(got, []console.ProblemKey{want}) {
		t.Errorf("re-drove %v, want [%v]", got, want)
	}
	browsertest.Screenshot(t, ctx, "problems-after-redrive")

	browsertest.Run(t, ctx, "opening the overview", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("states")))
	browsertest.ExpectTexts(t, ctx, "overview after the re-drive", map[string]string{"#state-failed": "0", "#state-pending": "100"})
}

func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	s := startConsole(t, token)
	ctx := browsertest.Tab(t, 45*time.Second)
	browsertest.Run(t, ctx, "opening a page logged out", chromedp.Navigate(s.URL+"/problems"), chromedp.WaitVisible(chromedp.ID("token")))
	if got, want := browsertest.Location(t, ctx), s.URL+"/login?next=%2Fproblems"; got != want {
		t.Errorf("logged out, landed on %s, want %s", got, want)
	}
	browsertest.Screenshot(t, ctx, "login")
	browsertest.Run(t, ctx, "logging in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "wrong"), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("error")))
	browsertest.Run(t, ctx, "logging in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("problems")))
	if got := browsertest.Location(t, ctx); got != s.URL+"/problems" {
		t.Errorf("after login, on %s, want /problems", got)
	}
	// The session is a cookie script cannot read.
	if c := browsertest.Eval[string](t, ctx, `document.cookie`); c != "" {
		t.Errorf("document.cookie = %q, want the cookies HttpOnly", c)
	}
}
