package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/billing"
)

// redrivable are the states a re-drive acts on: the ones that were not billed.
var redrivable = []billing.State{billing.Unbillable, billing.Failed, billing.Rejected}

// parseProblemKey checks what a form or API body asks to re-drive.
func parseProblemKey(customer, state, reason string) (ProblemKey, error) {
	st, err := billing.ParseState(state)
	if err != nil || !slices.Contains(redrivable, st) {
		return ProblemKey{}, fmt.Errorf("state must be one of %v", redrivable)
	}
	if customer == "" || len(customer) > maxField || len(reason) > maxField {
		return ProblemKey{}, errors.New("customer is required; customer and reason are at most 4 KiB")
	}
	return ProblemKey{Customer: customer, State: st, Reason: reason}, nil
}

// sortProblems puts the oldest problem first: it has waited longest.
func sortProblems(gs []ProblemGroup) {
	slices.SortStableFunc(gs, func(a, b ProblemGroup) int {
		return cmp.Or(a.Oldest.Compare(b.Oldest), strings.Compare(a.Customer, b.Customer),
			strings.Compare(string(a.State), string(b.State)), strings.Compare(a.Reason, b.Reason))
	})
}

func redriveMessage(k ProblemKey, n int) string {
	if n == 0 {
		// The usual cause: the operator fixed the account a moment ago, and the
		// worker still holds the old answer. "re-queued 0 events" read as if
		// the button had done its job.
		group := string(k.State)
		if k.Reason != "" {
			group += ": " + k.Reason
		}
		return fmt.Sprintf("no event of %s left the group (%s): if its cause is fixed, the billing worker may not see it yet (it remembers billing accounts for --worker-account-ttl); re-drive again shortly", k.Customer, group)
	}
	if k.Reason == "" {
		return fmt.Sprintf("re-queued %s of %s (%s)", count(int64(n), "event"), k.Customer, k.State)
	}
	return fmt.Sprintf("re-queued %s of %s (%s: %s)", count(int64(n), "event"), k.Customer, k.State, k.Reason)
}

func (c *console) problemsPage(w http.ResponseWriter, r *http.Request) {
	gs, err := c.cfg.Source.Problems(r.Context())
	if err != nil {
		c.pageError(w, r, http.StatusInternalServerError, "The billing problems could not be read; the error is in the log.", err)
		return
	}
	sortProblems(gs)
	c.render(w, r, http.StatusOK, "problems", "Billing problems", struct {
		Flash  string
		Now    time.Time
		Groups []ProblemGroup
	}{c.flash(r.URL.Query()), c.now(), gs})
}

// redrivePost re-drives one group, then redirects (so a reload does not post
// again) to the problems page with a signed note of what it did: signed, so
// that nobody can link an operator to a page announcing a re-drive that
// never happened.
func (c *console) redrivePost(w http.ResponseWriter, r *http.Request) {
	if !c.formOK(w, r) {
		return
	}
	k, err := parseProblemKey(r.PostFormValue("customer"), r.PostFormValue("state"), r.PostFormValue("reason"))
	if err != nil {
		c.pageError(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	n, err := c.cfg.Source.Redrive(r.Context(), k)
	if err != nil {
		c.pageError(w, r, http.StatusInternalServerError, "The re-drive failed; the error is in the log.", err)
		return
	}
	c.log.Info("console: re-drive", "customer", k.Customer, "state", k.State, "reason", k.Reason, "requeued", n)
	msg := redriveMessage(k, n)
	http.Redirect(w, r, "/problems?"+url.Values{"done": {msg}, "sig": {c.sign("flash", msg)}}.Encode(), http.StatusSeeOther)
}

func (c *console) flash(q url.Values) string {
	msg := q.Get("done")
	if msg == "" || len(msg) > 3*maxField || !equalSecret(q.Get("sig"), c.sign("flash", msg)) {
		return ""
	}
	return msg
}
