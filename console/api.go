package console

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/egressd/egressd/billing"
)

// The API's shapes. They are separate from the Source types so that the
// wire format stays put when the interface grows.

type apiErrorBody struct {
	Error apiErrorDetail `json:"error"`
}

type apiErrorDetail struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

type apiDay struct {
	Date   string `json:"date"`
	Bytes  uint64 `json:"bytes"`
	Events int64  `json:"events"`
}

type apiReconcile struct {
	At      time.Time `json:"at"`
	OK      bool      `json:"ok"`
	Summary string    `json:"summary"`
}

type apiOverview struct {
	EgressToday          uint64                  `json:"egressToday"`
	EgressMonth          uint64                  `json:"egressMonth"`
	EventsToday          int64                   `json:"eventsToday"`
	EventsMonth          int64                   `json:"eventsMonth"`
	InvocationsPerSecond float64                 `json:"invocationsPerSecond"`
	QueueDepth           int                     `json:"queueDepth"`
	DeadLetters          int                     `json:"deadLetters"`
	BillingLagSeconds    float64                 `json:"billingLagSeconds"`
	States               map[billing.State]int64 `json:"states"`
	LastReconcile        *apiReconcile           `json:"lastReconcile"`
	Daily                []apiDay                `json:"daily"`
}

type apiCustomer struct {
	Customer string                  `json:"customer"`
	Account  string                  `json:"account"`
	Bytes    uint64                  `json:"bytes"`
	Events   int64                   `json:"events"`
	States   map[billing.State]int64 `json:"states"`
}

type apiSpace struct {
	Space  string `json:"space"`
	Bytes  uint64 `json:"bytes"`
	Events int64  `json:"events"`
}

type apiCustomerDetail struct {
	apiCustomer
	Spaces []apiSpace      `json:"spaces"`
	Daily  []apiDay        `json:"daily"`
	Recent []billing.Entry `json:"recent"`
}

type apiProblem struct {
	Customer string        `json:"customer"`
	State    billing.State `json:"state"`
	Reason   string        `json:"reason"`
	Events   int64         `json:"events"`
	Bytes    uint64        `json:"bytes"`
	Oldest   time.Time     `json:"oldest"`
}

type apiRedriveRequest struct {
	Customer string `json:"customer"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
}

type apiRedriveResult struct {
	Customer string        `json:"customer"`
	State    billing.State `json:"state"`
	Reason   string        `json:"reason"`
	Requeued int           `json:"requeued"`
	Message  string        `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError answers with the error shape; err, if any, goes to the log only.
func (c *console) apiError(w http.ResponseWriter, r *http.Request, status int, name, message string, err error) {
	if err != nil {
		c.log.Error("console: serving API", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, apiErrorBody{Error: apiErrorDetail{Name: name, Message: message}})
}

func (c *console) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.apiError(w, r, http.StatusInternalServerError, "InternalError", what+" failed; the error is in the log", err)
}

func apiDays(days []DayTotal) []apiDay {
	out := make([]apiDay, len(days))
	for i, d := range days {
		out[i] = apiDay(d)
	}
	return out
}

// allStates gives every state a count, zero included, so scripts need not
// guess whether a missing key means zero.
func allStates(m map[billing.State]int64) map[billing.State]int64 {
	out := make(map[billing.State]int64, len(billing.States))
	for _, s := range billing.States {
		out[s] = m[s]
	}
	return out
}

func toAPICustomer(row CustomerRow) apiCustomer {
	return apiCustomer{Customer: row.Customer, Account: row.Account, Bytes: row.Bytes, Events: row.Events, States: allStates(row.States)}
}

func (c *console) apiOverview(w http.ResponseWriter, r *http.Request) {
	o, err := c.cfg.Source.Overview(r.Context(), c.now())
	if err != nil {
		c.internal(w, r, "reading the overview", err)
		return
	}
	out := apiOverview{
		EgressToday: o.EgressToday, EgressMonth: o.EgressMonth, EventsToday: o.EventsToday, EventsMonth: o.EventsMonth,
		InvocationsPerSecond: o.InvocationsPerSecond, QueueDepth: o.QueueDepth, DeadLetters: o.DeadLetters,
		BillingLagSeconds: o.BillingLag.Seconds(), States: allStates(o.States), Daily: apiDays(o.Daily),
	}
	if rc := o.LastReconcile; rc != nil {
		out.LastReconcile = &apiReconcile{At: rc.At.UTC(), OK: rc.OK, Summary: rc.Summary}
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) apiCustomers(w http.ResponseWriter, r *http.Request) {
	order, err := parseCustomerOrder(r.URL.Query())
	if err != nil {
		c.apiError(w, r, http.StatusBadRequest, "BadRequest", err.Error(), nil)
		return
	}
	rows, err := c.cfg.Source.Customers(r.Context(), c.now())
	if err != nil {
		c.internal(w, r, "reading the customers", err)
		return
	}
	sortCustomers(rows, order)
	out := make([]apiCustomer, len(rows))
	for i, row := range rows {
		out[i] = toAPICustomer(row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": out})
}

func (c *console) apiCustomer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("customer")
	if name == "" || len(name) > maxField {
		c.apiError(w, r, http.StatusBadRequest, "BadRequest", "that is not a customer", nil)
		return
	}
	d, err := c.cfg.Source.Customer(r.Context(), name, c.now())
	if errors.Is(err, ErrNotFound) {
		c.apiError(w, r, http.StatusNotFound, "NotFound", "no such customer", nil)
		return
	}
	if err != nil {
		c.internal(w, r, "reading the customer", err)
		return
	}
	out := apiCustomerDetail{apiCustomer: toAPICustomer(d.CustomerRow), Spaces: make([]apiSpace, len(d.Spaces)), Daily: apiDays(d.Daily), Recent: d.Recent}
	for i, s := range d.Spaces {
		out.Spaces[i] = apiSpace(s)
	}
	if out.Recent == nil {
		out.Recent = []billing.Entry{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *console) apiProblems(w http.ResponseWriter, r *http.Request) {
	gs, err := c.cfg.Source.Problems(r.Context())
	if err != nil {
		c.internal(w, r, "reading the billing problems", err)
		return
	}
	sortProblems(gs)
	out := make([]apiProblem, len(gs))
	for i, g := range gs {
		out[i] = apiProblem{Customer: g.Customer, State: g.State, Reason: g.Reason, Events: g.Events, Bytes: g.Bytes, Oldest: g.Oldest.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"problems": out})
}

// apiRedrive takes JSON only: a cross-site page cannot send that content
// type without a CORS preflight, which this server never grants.
func (c *console) apiRedrive(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		c.apiError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "send a JSON body with Content-Type: application/json", nil)
		return
	}
	var req apiRedriveRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.apiError(w, r, http.StatusRequestEntityTooLarge, "TooLarge", "the body is larger than 64 KiB", nil)
			return
		}
		c.apiError(w, r, http.StatusBadRequest, "BadRequest", `the body must be {"customer": ..., "state": ..., "reason": ...}`, nil)
		return
	}
	k, err := parseProblemKey(req.Customer, req.State, req.Reason)
	if err != nil {
		c.apiError(w, r, http.StatusBadRequest, "BadRequest", err.Error(), nil)
		return
	}
	n, err := c.cfg.Source.Redrive(r.Context(), k)
	if err != nil {
		c.internal(w, r, "the re-drive", err)
		return
	}
	c.log.Info("console: re-drive (API)", "customer", k.Customer, "state", k.State, "reason", k.Reason, "requeued", n)
	writeJSON(w, http.StatusOK, apiRedriveResult{Customer: k.Customer, State: k.State, Reason: k.Reason, Requeued: n, Message: redriveMessage(k, n)})
}

func (c *console) apiReceipt(w http.ResponseWriter, r *http.Request) {
	v, status, message, err := c.lookupReceipt(r)
	if status != http.StatusOK {
		name := map[int]string{http.StatusBadRequest: "BadRequest", http.StatusNotFound: "NotFound"}[status]
		if name == "" {
			name = "InternalError"
		}
		c.apiError(w, r, status, name, message, err)
		return
	}
	writeJSON(w, http.StatusOK, v.V)
}
