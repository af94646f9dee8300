package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/egressd/egressd/billing"
)

// sortKeys are the columns the customers table sorts by, in display order;
// the ledger states follow them.
var sortKeys = []string{"customer", "account", "bytes", "events"}

// customerOrder reads ?sort= and ?order=; the default is the biggest
// spender first.
type customerOrder struct {
	Key  string
	Desc bool
}

func parseCustomerOrder(q url.Values) (customerOrder, error) {
	o := customerOrder{Key: q.Get("sort"), Desc: true}
	if o.Key == "" {
		o.Key = "bytes"
	}
	if !slices.Contains(sortKeys, o.Key) && !isState(o.Key) {
		return o, fmt.Errorf("sort must be one of %s or a ledger state", strings.Join(sortKeys, ", "))
	}
	switch q.Get("order") {
	case "":
		o.Desc = !textColumn(o.Key)
	case "asc":
		o.Desc = false
	case "desc":
	default:
		return o, errors.New("order must be asc or desc")
	}
	return o, nil
}

func isState(s string) bool {
	_, err := billing.ParseState(s)
	return err == nil
}

func textColumn(key string) bool { return key == "customer" || key == "account" }

// sortCustomers sorts rows in place; ties fall back to the customer so the
// order is stable between reloads.
func sortCustomers(rows []CustomerRow, o customerOrder) {
	slices.SortStableFunc(rows, func(a, b CustomerRow) int {
		var d int
		switch o.Key {
		case "customer":
			d = strings.Compare(a.Customer, b.Customer)
		case "account":
			d = strings.Compare(a.Account, b.Account)
		case "bytes":
			d = cmp.Compare(a.Bytes, b.Bytes)
		case "events":
			d = cmp.Compare(a.Events, b.Events)
		default:
			d = cmp.Compare(a.States[billing.State(o.Key)], b.States[billing.State(o.Key)])
		}
		if o.Desc {
			d = -d
		}
		if d == 0 {
			d = strings.Compare(a.Customer, b.Customer)
		}
		return d
	})
}

type column struct {
	Key, Label, Href, Arrow string
	Num                     bool
}

// columns builds the header links: a click on the sorted column flips its
// order, a click on another sorts by it in its natural order.
func columns(cur customerOrder) []column {
	keys := append([]string{}, sortKeys...)
	for _, s := range billing.States {
		keys = append(keys, string(s))
	}
	labels := map[string]string{"customer": "Customer", "account": "Stripe account", "bytes": "Egress", "events": "Events"}
	out := make([]column, 0, len(keys))
	for _, k := range keys {
		col := column{Key: k, Label: cmp.Or(labels[k], k), Num: !textColumn(k)}
		order := "desc"
		if textColumn(k) {
			order = "asc"
		}
		if k == cur.Key {
			col.Arrow, order = "▲", "desc"
			if cur.Desc {
				col.Arrow, order = "▼", "asc"
			}
		}
		col.Href = "/customers?" + url.Values{"sort": {k}, "order": {order}}.Encode()
		out = append(out, col)
	}
	return out
}

type customerRowView struct {
	CustomerRow
	States []stateCount
}

func (c *console) customersPage(w http.ResponseWriter, r *http.Request) {
	order, err := parseCustomerOrder(r.URL.Query())
	if err != nil {
		c.pageError(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	now := c.now()
	rows, err := c.cfg.Source.Customers(r.Context(), now)
	if err != nil {
		c.pageError(w, r, http.StatusInternalServerError, "The customers could not be read; the error is in the log.", err)
		return
	}
	sortCustomers(rows, order)
	views := make([]customerRowView, len(rows))
	for i, row := range rows {
		views[i] = customerRowView{CustomerRow: row, States: stateCounts(row.States)}
	}
	c.render(w, r, http.StatusOK, "customers", "Customers", struct {
		Month   string
		Columns []column
		Rows    []customerRowView
	}{now.UTC().Format("January 2006"), columns(order), views})
}

func (c *console) customerPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("customer")
	if name == "" || len(name) > maxField {
		c.pageError(w, r, http.StatusBadRequest, "That is not a customer.", nil)
		return
	}
	now := c.now()
	d, err := c.cfg.Source.Customer(r.Context(), name, now)
	if errors.Is(err, ErrNotFound) {
		c.pageError(w, r, http.StatusNotFound, "No such customer.", nil)
		return
	}
	if err != nil {
		c.pageError(w, r, http.StatusInternalServerError, "The customer could not be read; the error is in the log.", err)
		return
	}
	c.render(w, r, http.StatusOK, "customer", "Customer "+name, struct {
		C      CustomerDetail
		Month  string
		States []stateCount
		Chart  chartView
	}{d, now.UTC().Format("January 2006"), stateCounts(d.States), newChartView("daily", "egress per day", d.Daily)})
}
