package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
)

const (
	sessionCookie = "egressd_console"
	csrfCookie    = "egressd_csrf"
)

// authenticate lets a request through when no token is configured, when it
// carries the token as a Bearer header, or when it is a browser holding the
// session cookie (except on API writes: those take the header only, which
// is what spares them a CSRF token). The login form is always reachable.
func (c *console) authenticate(next http.Handler) http.Handler {
	if c.cfg.Token == "" {
		// Without a token the console is this machine's alone (serve keeps
		// it on loopback): answer only to loopback names, so that a page
		// whose own name was re-pointed at 127.0.0.1 (DNS rebinding) does
		// not become same-origin with it.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !loopbackHost(r.Host) {
				http.Error(w, "this console answers only to a loopback address (or set a token)", http.StatusMisdirectedRequest)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := strings.HasPrefix(r.URL.Path, "/api/")
		switch {
		case r.URL.Path == "/login":
		case c.bearerOK(r):
		case c.sessionOK(r) && (!api || r.Method == http.MethodGet || r.Method == http.MethodHead):
		case api:
			w.Header().Set("WWW-Authenticate", `Bearer realm="egressd console"`)
			c.apiError(w, r, http.StatusUnauthorized, "Unauthorized", "send the console token as Authorization: Bearer <token>", nil)
			return
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		default:
			c.pageError(w, r, http.StatusUnauthorized, "Log in first.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// equalSecret compares in constant time, lengths included: hashing first
// makes both sides the same length.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (c *console) bearerOK(r *http.Request) bool {
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && equalSecret(given, c.cfg.Token)
}

// sessionValue is what the session cookie holds: an HMAC of the token, so a
// leaked cookie does not reveal the token, and it stays valid across
// restarts and replicas until the token changes.
func (c *console) sessionValue() string {
	m := hmac.New(sha256.New, []byte(c.cfg.Token))
	m.Write([]byte("egressd console session v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *console) sessionOK(r *http.Request) bool {
	ck, err := r.Cookie(sessionCookie)
	return err == nil && equalSecret(ck.Value, c.sessionValue())
}

func (c *console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func (c *console) sign(parts ...string) string {
	m := hmac.New(sha256.New, c.secret)
	for _, p := range parts {
		// Length-prefixed so that ("ab","c") and ("a","bc") sign differently.
		m.Write([]byte{byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// csrfToken returns the hidden-field value for this browser's forms, giving
// the browser its random CSRF cookie first if it has none. The field is an
// HMAC of the cookie (signed double submit): another site can neither read
// the cookie nor compute the field, and SameSite=Strict keeps the cookie
// off its requests anyway.
func (c *console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	var id string
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 64 {
		id = ck.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b)
		id = hex.EncodeToString(b)
		c.setCookie(w, r, csrfCookie, id, 0)
	}
	return c.sign("csrf", id)
}

// csrfOK checks a submitted form's token against the browser's cookie.
func (c *console) csrfOK(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue(csrfField)), []byte(c.sign("csrf", ck.Value)))
}

// localPath keeps a post-login redirect on this site: a path, not "//host"
// or "/\host", which browsers treat as another origin.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: localPath(r.URL.Query().Get("next"))})
}

type loginData struct {
	Next, Problem string
}

func (c *console) loginPost(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !c.formOK(w, r) {
		return
	}
	next := localPath(r.PostFormValue("next"))
	if !equalSecret(r.PostFormValue("token"), c.cfg.Token) {
		c.log.Warn("console: failed login", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Problem: "That is not the console token."})
		return
	}
	c.setCookie(w, r, sessionCookie, c.sessionValue(), 0)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) logoutPost(w http.ResponseWriter, r *http.Request) {
	if !c.formOK(w, r) {
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// formOK parses a posted form and checks its CSRF token, answering the
// request itself when either fails.
func (c *console) formOK(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		c.pageError(w, r, http.StatusBadRequest, "The form could not be read (too large?).", nil)
		return false
	}
	if !c.csrfOK(r) {
		c.pageError(w, r, http.StatusForbidden, "The form's security token is missing or stale: reload the page and try again.", nil)
		return false
	}
	return true
}

// loopbackHost says whether a Host header names this machine: localhost or
// a loopback IP literal, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
