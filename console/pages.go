package console

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/egressd/egressd/billing"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages holds one template set per page: each page defines "content", so
// they cannot share a set.
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"overview", "customers", "customer", "receipt", "problems", "login", "error"}

func loadPages() *pages {
	funcs := template.FuncMap{
		"bytes":      humanBytes,
		"exact":      exactAny,
		"uint":       func(n int64) uint64 { return uint64(max(n, 0)) },
		"time":       formatTime,
		"pathEscape": url.PathEscape,
		"ago":        func(now, t time.Time) string { return humanDuration(now.Sub(t)) },
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		// The templates are compiled into the binary, so a parse error is a
		// build defect that every test run reports: Must is the right call.
		p.byName[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html"))
	}
	return p
}

func exactAny(v any) string {
	switch n := v.(type) {
	case int:
		return exact(n)
	case int64:
		return exact(n)
	case uint64:
		return exact(n)
	}
	return "?"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// layout is what every page template gets; Page is the page's own data.
type layout struct {
	Title, Nav, CSRF string
	LoggedIn         bool
	Page             any
}

// render writes a page whole or not at all: executing into a buffer first
// means a template error becomes a clean 500, not half a page.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	nav := name
	if name == "customer" {
		nav = "customers"
	}
	l := layout{Title: title, Nav: nav, CSRF: c.csrfToken(w, r), LoggedIn: c.cfg.Token != "" && c.sessionOK(r), Page: data}
	var buf bytes.Buffer
	if err := c.pages.byName[name].ExecuteTemplate(&buf, "layout", l); err != nil {
		c.log.Error("console: rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// pageError shows the caller message, and logs err (which may hold
// internals the caller must not see).
func (c *console) pageError(w http.ResponseWriter, r *http.Request, status int, message string, err error) {
	if err != nil {
		c.log.Error("console: serving page", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	c.render(w, r, status, "error", http.StatusText(status), message)
}

// stateCount is one ledger state's count, in billing.States order.
type stateCount struct {
	State billing.State
	N     int64
	Last  bool
}

func stateCounts(m map[billing.State]int64) []stateCount {
	out := make([]stateCount, len(billing.States))
	for i, s := range billing.States {
		out[i] = stateCount{State: s, N: m[s], Last: i == len(billing.States)-1}
	}
	return out
}

func (c *console) overviewPage(w http.ResponseWriter, r *http.Request) {
	now := c.now()
	o, err := c.cfg.Source.Overview(r.Context(), now)
	if err != nil {
		c.pageError(w, r, http.StatusInternalServerError, "The overview could not be read; the error is in the log.", err)
		return
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", struct {
		O      Overview
		Now    string
		Lag    string
		States []stateCount
		Chart  chartView
	}{o, formatTime(now), humanDuration(o.BillingLag), stateCounts(o.States), newChartView("daily", "egress per day, last 30 days", o.Daily)})
}

// chartView is a chart with the id and label its SVG element carries.
type chartView struct {
	chartData
	ID, Label string
}

func newChartView(id, label string, days []DayTotal) chartView {
	return chartView{chartData: chart(days), ID: id, Label: label}
}
