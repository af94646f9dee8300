package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ipfs/go-cid"
	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/client"
)

// receiptView is a receipt as the page and the API show it.
type receiptView struct {
	V       client.ReceiptView
	Result  string // the ok or error value, indented DAG-JSON
	Checked bool   // a service key was configured
	Valid   bool
	Service string
}

// lookupReceipt reads the {cid} path value and fetches the receipt; status
// and message say what went wrong for the caller, err what for the log.
func (c *console) lookupReceipt(r *http.Request) (v receiptView, status int, message string, err error) {
	raw := r.PathValue("cid")
	if _, perr := cid.Decode(raw); perr != nil || len(raw) > maxField {
		return v, http.StatusBadRequest, "That is not a CID.", nil
	}
	rcpt, err := c.cfg.Source.Receipt(r.Context(), raw)
	if errors.Is(err, ErrNotFound) {
		return v, http.StatusNotFound, "No receipt for " + raw + ".", nil
	}
	if err != nil {
		return v, http.StatusInternalServerError, "The receipt could not be read; the error is in the log.", err
	}
	v, err = c.viewReceipt(rcpt)
	if err != nil {
		return v, http.StatusInternalServerError, "The receipt could not be rendered; the error is in the log.", err
	}
	return v, http.StatusOK, "", nil
}

func (c *console) viewReceipt(rcpt receipt.AnyReceipt) (receiptView, error) {
	var v receiptView
	var err error
	if v.V, err = client.View(rcpt); err != nil {
		return v, err
	}
	out := v.V.Ok
	if v.V.Error != nil {
		out = v.V.Error
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		v.Result = pretty.String()
	} else {
		v.Result = string(out)
	}
	if svc := c.cfg.Service; svc != nil {
		v.Checked, v.Service = true, svc.DID().String()
		// The issuer must be the service itself: a receipt validly signed by
		// anyone else is no receipt of ours.
		if iss := rcpt.Issuer(); iss != nil && iss.DID() == svc.DID() {
			ok, verr := rcpt.VerifySignature(svc)
			if verr != nil {
				c.log.Warn("console: verifying receipt signature", "receipt", v.V.Receipt, "err", verr)
			}
			v.Valid = ok && verr == nil
		}
		v.V.Verified = &v.Valid
	}
	return v, nil
}

func (c *console) receiptPage(w http.ResponseWriter, r *http.Request) {
	v, status, message, err := c.lookupReceipt(r)
	if status != http.StatusOK {
		c.pageError(w, r, status, message, err)
		return
	}
	c.render(w, r, http.StatusOK, "receipt", fmt.Sprintf("Receipt %s", v.V.Receipt), v)
}
