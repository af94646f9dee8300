package stripe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// sessionMargin is how long before its expiry a meter event session is
// replaced, at most: a request sent with a token about to expire may arrive
// after it has. A session shorter than four margins is replaced after three
// quarters of its life.
const sessionMargin = time.Minute

// session is a v2 meter event session: the token that authenticates stream
// requests, and when to stop using it.
type session struct {
	token string
	// renewAt is by the local clock: the session's lifetime, as Stripe
	// states it (expires_at less created, both by Stripe's clock), counted
	// from just before it was asked for, less the margin. Clocks that
	// disagree therefore cannot make a session look fresh when it is not.
	renewAt time.Time
}

// sessions holds the session that concurrent Report calls share, and
// replaces it when it is due or Stripe says it expired. One replacement is
// in flight at a time; every caller that needs it waits for that one.
type sessions struct {
	create func(context.Context) (*session, error)
	now    func() time.Time
	// timeout bounds one creation, which no caller's context does.
	timeout time.Duration

	mu      sync.Mutex
	current *session
	renewal *renewal // in flight, or nil
}

// renewal is one session creation that callers wait for.
type renewal struct {
	done chan struct{}
	s    *session
	err  error
}

// get returns a session valid for a while yet, creating one if needed.
func (p *sessions) get(ctx context.Context) (*session, error) {
	p.mu.Lock()
	if s := p.current; s != nil && p.now().Before(s.renewAt) {
		p.mu.Unlock()
		return s, nil
	}
	rn := p.renewal
	if rn == nil {
		rn = &renewal{done: make(chan struct{})}
		p.renewal = rn
		// Detached from the caller, whose cancellation must not fail the
		// others waiting, and bounded on its own, or a creation that
		// never ends would keep every caller waiting for good.
		go p.renew(context.WithoutCancel(ctx), rn)
	}
	p.mu.Unlock()
	select {
	case <-rn.done:
		return rn.s, rn.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *sessions) renew(ctx context.Context, rn *renewal) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	s, err := p.create(ctx)
	p.mu.Lock()
	if err == nil {
		p.current = s
	}
	p.renewal = nil
	rn.s, rn.err = s, err
	p.mu.Unlock()
	close(rn.done)
}

// expired drops s after Stripe refused it, unless another caller has
// already replaced it: many requests sent with one token learn of its
// expiry together, and one new session serves them all.
func (p *sessions) expired(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == s {
		p.current = nil
	}
}

// newSession creates a meter event session with the secret key (API
// reference v2, Create a meter event session), as stripe-go v81's
// example/v2/meter_event_stream does (with the
// same request, though not through rawrequest: see v2Host).
func (r *Reporter) newSession(ctx context.Context) (*session, error) {
	if err := r.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("waiting for the Stripe rate limit: %w", err)
	}
	asked := r.now()
	answer, err := r.apiHost.call(ctx, http.MethodPost, "/v2/billing/meter_event_session", r.key, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		Token     string    `json:"authentication_token"`
		Created   time.Time `json:"created"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(answer, &body); err != nil || body.Token == "" || body.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("reading the meter event session Stripe created: %.200s", answer)
	}
	lifetime := body.ExpiresAt.Sub(body.Created)
	if body.Created.IsZero() {
		lifetime = body.ExpiresAt.Sub(asked)
	}
	margin := min(sessionMargin, lifetime/4)
	s := &session{token: body.Token, renewAt: asked.Add(lifetime - margin)}
	r.log.Debug("stripe meter event session created", "expires_at", body.ExpiresAt, "lifetime", lifetime)
	return s, nil
}
