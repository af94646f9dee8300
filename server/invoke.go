package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/storacha/go-ucanto/core/car"
	"github.com/storacha/go-ucanto/core/dag/blockstore"
	"github.com/storacha/go-ucanto/core/invocation"
	"github.com/storacha/go-ucanto/core/ipld"
	"github.com/storacha/go-ucanto/core/message"
	"github.com/storacha/go-ucanto/core/receipt"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/server/wire"
)

// errMissingConfig is returned by New when a required store or the signer is missing.
var errMissingConfig = errors.New("server: Signer, Customers, Queue and Receipts are required")

// handleInvoke executes a ucanto agent message: every invocation in it gets
// exactly one receipt in the reply.
func (s *Server) handleInvoke(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != car.ContentType {
		w.Header().Set("Accept", car.ContentType)
		writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType",
			fmt.Sprintf("request body must be a ucanto agent message with Content-Type %s", car.ContentType))
		return
	}
	if accept := r.Header.Get("Accept"); accept != "" && !strings.Contains(accept, car.ContentType) && !strings.Contains(accept, "*/*") {
		writeError(w, http.StatusNotAcceptable, "NotAcceptable", fmt.Sprintf("receipts are only served as %s", car.ContentType))
		return
	}
	// A declared length past the limit is refused before a byte is read.
	if r.ContentLength > s.cfg.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge",
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.cfg.MaxBodyBytes))
		return
	}
	body, held, ok, err := s.readBody(w, r)
	defer s.release(held)
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "Overloaded",
			"the service is working on as many requests as its memory budget allows; retry shortly")
		return
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge",
				fmt.Sprintf("request body exceeds the limit of %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "BadRequest", "reading request body failed")
		return
	}
	items, err := s.decodeMessage(body)
	var tooMany errTooManyInvocations
	var refused *wire.Error
	switch {
	case errors.As(err, &tooMany):
		writeError(w, http.StatusRequestEntityTooLarge, "TooManyInvocations", err.Error())
		return
	case errors.As(err, &refused) && refused.Name == "MessageLimitExceeded":
		writeError(w, http.StatusRequestEntityTooLarge, refused.Name, err.Error())
		return
	case errors.As(err, &refused):
		writeError(w, http.StatusBadRequest, refused.Name, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "MalformedMessage", err.Error())
		return
	}

	rcpts, outcomes, err := s.execute(r.Context(), items)
	noteOutcomes(w, len(items), outcomes)
	if err != nil {
		s.cfg.Logger.Error("executing invocations", "invocations", len(items), "err", err)
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable",
			"the service could not record the invocations durably; nothing was recorded, retry later")
		return
	}
	reply, err := message.Build(nil, rcpts)
	if err != nil {
		s.cfg.Logger.Error("building reply", "err", err)
		writeError(w, http.StatusInternalServerError, "InternalError", "building the reply failed")
		return
	}
	w.Header().Set("Content-Type", car.ContentType)
	w.WriteHeader(http.StatusOK)
	writeCAR(w, reply)
}

// incoming is one invocation of a message, ready to run.
type incoming struct {
	link ipld.Link
	// inv is the invocation over its own blocks (itself and its proofs),
	// which blocks reads; nil when refused.
	inv    invocation.Invocation
	blocks blockstore.BlockReader
	// refused is set when the invocation was refused before validation.
	refused *capabilities.Failure
	// twin is the CID of the invocation's one other valid encoding, for an
	// invocation without proofs ("prf" absent or empty sign the same); nil
	// otherwise. Both CIDs name one billing event.
	twin ipld.Link
	// identity names the signed content whatever its encoding: the CID of
	// the form with "prf" present for an invocation with a twin, else link.
	// It is the cause of the billing event and of the receipt's success, so
	// both encodings, even recorded at once on two replicas, are one event
	// in the ledger.
	identity ipld.Link
}

// readBody reads the request body. It takes room in the in-flight budget
// for the whole body (its declared length, or the largest allowed when
// undeclared) only once the first bytes have arrived, so a client that
// sends headers and then nothing holds none of it; and from then on the
// body must arrive at a reasonable pace (bodyDeadline), so a client that
// trickles holds it only briefly. held is what the caller gives back with
// release once the message is done with; ok is false when the budget
// stayed full for AdmissionWait.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, held int64, ok bool, err error) {
	in := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	var first [32 << 10]byte
	n, err := io.ReadAtLeast(in, first[:], 1)
	if err == io.EOF {
		return nil, 0, true, nil
	}
	if err != nil && n == 0 {
		return nil, 0, true, err
	}
	size := r.ContentLength
	if size < 0 || size > s.cfg.MaxBodyBytes {
		size = s.cfg.MaxBodyBytes
	}
	held = min(max(size, 1), s.cfg.MaxInflightBytes)
	if !s.hold(r.Context(), held) {
		return nil, 0, false, nil
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(bodyDeadline(size)))
	defer rc.SetReadDeadline(time.Time{})
	if r.ContentLength < 0 {
		// Chunked: grow as it comes (MaxBytesReader bounds it).
		buf := bytes.NewBuffer(append([]byte(nil), first[:n]...))
		if err == nil {
			if _, err := buf.ReadFrom(in); err != nil {
				return nil, held, true, err
			}
		}
		return buf.Bytes(), held, true, nil
	}
	// Declared: one buffer of that size, and nothing past it.
	if int64(n) > size {
		return nil, held, true, errors.New("body longer than its Content-Length")
	}
	body = make([]byte, size)
	copy(body, first[:n])
	if _, err := io.ReadFull(in, body[n:]); err != nil {
		return nil, held, true, err
	}
	var one [1]byte
	if m, _ := in.Read(one[:]); m > 0 {
		return nil, held, true, errors.New("body longer than its Content-Length")
	}
	return body, held, true, nil
}

// bodyDeadline is how long a body of size bytes may take to arrive once it
// has started: two seconds, and a second per 4 MiB. Gateways send from a
// data centre (a batch of 100 invocations is about 200 KB); a client that
// declares a large body and trickles it holds its room at most this long.
func bodyDeadline(size int64) time.Duration {
	return 2*time.Second + time.Duration(size>>22)*time.Second
}

// hold takes n bytes of the in-flight budget, waiting at most AdmissionWait.
func (s *Server) hold(ctx context.Context, n int64) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AdmissionWait)
	defer cancel()
	if err := s.inflight.Acquire(ctx, n); err != nil {
		s.metrics.overloaded.Inc()
		return false
	}
	return true
}

// release gives back n bytes that hold took.
func (s *Server) release(n int64) {
	if n > 0 {
		s.inflight.Release(n)
	}
}

// decodeMessage parses a CAR agent message into its invocations. The wire
// package checks sizes, counts, depth and canonical encoding before any
// IPLD node is built; the decoders' panics are still recovered, as a second
// line of defence.
func (s *Server) decodeMessage(body []byte) (items []incoming, err error) {
	defer func() {
		if r := recover(); r != nil {
			items, err = nil, errors.New("request body is not a valid ucanto agent message")
		}
	}()
	root, blocks, err := wire.Read(body, s.cfg.Wire)
	if err != nil {
		return nil, err
	}
	bs, err := blockstore.NewBlockReader(blockstore.WithBlocks(blocks))
	if err != nil {
		return nil, fmt.Errorf("request body is not a valid CAR: %s", err)
	}
	msg, err := message.NewMessage(root, bs)
	if err != nil {
		return nil, fmt.Errorf("request body is not a ucanto agent message: %s", err)
	}
	links := msg.Invocations()
	if len(links) == 0 {
		return nil, errors.New("agent message holds no invocations")
	}
	if len(links) > s.cfg.MaxInvocations {
		return nil, errTooManyInvocations{len(links), s.cfg.MaxInvocations}
	}
	// Every block the proof walks visit is decoded (here, and again by the
	// validator): bound the bytes visited by the size of the message, so
	// that proofs listed many times, or invocations repeated, cannot turn a
	// small body into a large amount of decoding.
	r := newMessageReader(bs, s.decoded, s.cfg.MaxProofs, s.cfg.MaxDelegationDepth, decodeFactor*int64(len(body))+decodeAllowance)
	seen := map[string]bool{}
	for _, link := range links {
		if seen[link.String()] {
			continue // one receipt answers every mention of an invocation
		}
		seen[link.String()] = true
		item, err := r.readInvocation(link)
		if errors.Is(err, errDecodeBudget) {
			return nil, &wire.Error{Name: "MessageLimitExceeded", Err: fmt.Errorf("the proofs of this message would be decoded past %d bytes, %d times its size", r.maxVisited, decodeFactor)}
		}
		if err != nil {
			return nil, fmt.Errorf("invocation %s cannot be read: %s", link, err)
		}
		items = append(items, item)
	}
	return items, nil
}

// A message's proof walks may visit at most decodeFactor times its size in
// block bytes, plus decodeAllowance: a gateway's batch of invocations
// sharing one delegation visits about three times its size.
const (
	decodeFactor    = 16
	decodeAllowance = 256 << 10
)

type errTooManyInvocations struct{ n, max int }

func (e errTooManyInvocations) Error() string {
	return fmt.Sprintf("message holds %d invocations, the limit is %d", e.n, e.max)
}

// execute runs the invocations and returns their receipts in order. It
// honours the invariant "an ok receipt means the event is durable": no
// receipt is returned unless its event and the receipt itself were recorded.
// An error means nothing was acknowledged and the caller may retry the whole
// message.
//
// tally counts the outcomes by name (ok, duplicate or the failure's name),
// for the access log; it is nil when err is set.
func (s *Server) execute(ctx context.Context, items []incoming) (rcpts []receipt.AnyReceipt, tally map[string]int, err error) {
	outcomes := make([]outcome, len(items))
	for i, item := range items {
		if item.twin == nil || item.refused != nil {
			continue
		}
		release, ok := s.claims.take(item.identity.String(), item.link.String())
		if !ok {
			items[i].refused = &capabilities.Failure{FailureName: "InvocationInFlight",
				Message: "another encoding of this invocation is being recorded right now; retry to get its receipt"}
			continue
		}
		defer release()
	}
	lookups := &customerLookups{store: s.cfg.Customers, found: map[string]string{}}
	workers := min(runtime.GOMAXPROCS(0), len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				outcomes[i] = s.run(ctx, items[i], lookups)
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()

	var (
		events []billing.Event
		fresh  []receipt.AnyReceipt
	)
	rcpts = make([]receipt.AnyReceipt, len(items))
	for i, o := range outcomes {
		if o.err != nil {
			return nil, nil, o.err
		}
		rcpts[i] = o.receipt
		events = append(events, o.events...)
		if o.store {
			fresh = append(fresh, o.receipt)
		}
	}
	if err := s.record(ctx, events, fresh); err != nil {
		return nil, nil, err
	}
	tally = map[string]int{}
	for i, o := range outcomes {
		s.metrics.invocations.WithLabelValues(o.capability, o.result).Inc()
		tally[o.result]++
		if o.result != "ok" && o.result != "duplicate" {
			// Refusals are the caller's to fix, not the operator's: debug,
			// with the name the receipt carries.
			s.cfg.Logger.Debug("invocation refused", "invocation", items[i].link.String(), "capability", o.capability, "failure", o.result)
		}
	}
	return rcpts, tally, nil
}

// record makes the events and receipts of a message durable: through the
// Journal in one step, or else the events first (one transaction for the
// whole message) and then the receipts, so that a failure between the two
// leaves events without receipts, which the ledger's dedup absorbs on retry,
// never a receipt without its event.
func (s *Server) record(ctx context.Context, events []billing.Event, rcpts []receipt.AnyReceipt) error {
	if s.cfg.Journal != nil {
		return s.cfg.Journal.Record(ctx, events, rcpts)
	}
	if err := s.cfg.Queue.Enqueue(ctx, events...); err != nil {
		return fmt.Errorf("enqueueing %d events: %w", len(events), err)
	}
	if err := s.cfg.Receipts.Put(ctx, rcpts...); err != nil {
		return fmt.Errorf("storing %d receipts: %w", len(rcpts), err)
	}
	return nil
}
