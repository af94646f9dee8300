package server

import "sync"

// claims holds the identities of the invocations being recorded right now.
// Two encodings of one invocation without proofs have two CIDs (see
// incoming.twin); if they arrived at the same moment, each would miss the
// other's receipt. A claim makes the second wait its turn: it is refused
// with InvocationInFlight and, on retry, finds the first one's receipt.
type claims struct {
	mu   sync.Mutex
	held map[string]*claim // by identity
}

type claim struct {
	link  string // the encoding being recorded
	count int    // how many are recording that same encoding
}

func newClaims() *claims { return &claims{held: map[string]*claim{}} }

// take claims identity for the encoding link. It fails while another
// encoding holds it; the same encoding twice (a gateway's retry, or one
// message naming an invocation twice) shares the claim, since its CID
// dedups it downstream.
func (c *claims) take(identity, link string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.held[identity]
	switch {
	case h == nil:
		h = &claim{link: link}
		c.held[identity] = h
	case h.link != link:
		return nil, false
	}
	h.count++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if h.count--; h.count == 0 {
			delete(c.held, identity)
		}
	}, true
}
