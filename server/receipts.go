package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/ipfs/go-cid"
	"github.com/storacha/go-ucanto/core/car"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/message"
	"github.com/storacha/go-ucanto/core/receipt"
	"github.com/storacha/go-ucanto/principal/signer"

	"github.com/egressd/egressd/receipts"
)

// handleReceipt answers GET /receipt/{cid} with an agent message whose report
// maps the invocation to its receipt, what ucanto clients expect.
func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request) {
	id, err := cid.Parse(r.PathValue("cid"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidCID", "the path must end in a CID")
		return
	}
	rcpt, err := s.cfg.Receipts.Get(r.Context(), id.String())
	if errors.Is(err, receipts.ErrNotFound) {
		writeError(w, http.StatusNotFound, "ReceiptNotFound", "no receipt is stored for "+id.String())
		return
	}
	if err != nil {
		s.cfg.Logger.Error("reading receipt", "cid", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the receipt store is not available, retry later")
		return
	}
	reply, err := message.Build(nil, []receipt.AnyReceipt{rcpt})
	if err != nil {
		s.cfg.Logger.Error("building receipt reply", "cid", id, "err", err)
		writeError(w, http.StatusInternalServerError, "InternalError", "building the reply failed")
		return
	}
	w.Header().Set("Content-Type", car.ContentType)
	// A receipt never changes once issued.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	writeCAR(w, reply)
}

// writeCAR streams an agent message as a CAR. car.Encode writes from a
// goroutine into a pipe: closing the pipe's reader, even when the client has
// gone away mid-reply, is what lets that goroutine (and every block of the
// reply it holds) go.
func writeCAR(w io.Writer, msg message.AgentMessage) {
	r := car.Encode([]ipld.Link{msg.Root().Link()}, msg.Blocks())
	defer r.Close()
	io.Copy(w, r)
}

// handleDIDDocument publishes the service's did:web document, so others can
// verify receipts signed under the did:web identity.
func (s *Server) handleDIDDocument(w http.ResponseWriter, r *http.Request) {
	wrapped, ok := s.cfg.Signer.(signer.WrappedSigner)
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "this service's identity is a did:key; it has no did:web document")
		return
	}
	writeJSON(w, http.StatusOK, NewDIDDocument(s.cfg.Signer.DID(), wrapped.Unwrap().DID()))
}
