package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const token = "s3cret-console-token"

func TestAuthBrowser(t *testing.T) {
	s := startConsole(t, token)
	c := browserClient(t)

	res := get(t, c, s.URL+"/customers?sort=events")
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/login?next=%2Fcustomers%3Fsort%3Devents" {
		t.Fatalf("GET /customers logged out: %d to %q, want 303 to the login form", res.status, res.header.Get("Location"))
	}
	if res := postForm(t, c, s.URL+"/problems/redrive", url.Values{"customer": {alice}, "state": {"failed"}}); res.status != http.StatusUnauthorized {
		t.Errorf("POST logged out: %d, want 401", res.status)
	}
	login := get(t, c, s.URL+"/login?next=%2Fcustomers%3Fsort%3Devents").body
	form := url.Values{"csrf": {csrfOf(t, login)}, "next": {"/customers?sort=events"}, "token": {"wrong"}}
	if res := postForm(t, c, s.URL+"/login", form); res.status != http.StatusUnauthorized || !strings.Contains(res.body, "not the console token") {
		t.Errorf("wrong token: %d, want 401 and a message", res.status)
	}
	form.Set("token", token)
	res = postForm(t, c, s.URL+"/login", form)
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/customers?sort=events" {
		t.Fatalf("login: %d to %q, want 303 back to the page asked for", res.status, res.header.Get("Location"))
	}
	setCookie := strings.Join(res.header.Values("Set-Cookie"), "\n")
	mustContain(t, "the session cookie", setCookie, "egressd_console=", "HttpOnly", "SameSite=Strict")
	if strings.Contains(setCookie, token) {
		t.Error("the session cookie holds the token itself")
	}
	if res := get(t, c, s.URL+"/customers"); res.status != http.StatusOK {
		t.Fatalf("GET /customers logged in: %d", res.status)
	}
	// The API reads with the browser's session, but writes only with the header.
	if res := get(t, c, s.URL+"/api/overview"); res.status != http.StatusOK {
		t.Errorf("GET /api/overview with the session: %d, want 200", res.status)
	}
	if res := do(t, c, "POST", s.URL+"/api/redrive", strings.NewReader(`{"customer":"`+alice+`","state":"failed","reason":"stripe unreachable"}`), "Content-Type", "application/json"); res.status != http.StatusUnauthorized {
		t.Errorf("POST /api/redrive with only the session: %d, want 401", res.status)
	}
	if len(s.src.redriven()) != 0 {
		t.Fatal("an unauthenticated API call re-drove")
	}
	// Logging out ends the session.
	page := get(t, c, s.URL+"/").body
	if res := postForm(t, c, s.URL+"/logout", url.Values{"csrf": {csrfOf(t, page)}}); res.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.status)
	}
	if res := get(t, c, s.URL+"/"); res.status != http.StatusSeeOther {
		t.Errorf("GET / after logout: %d, want 303", res.status)
	}
}

func TestAuthLoginRedirectStaysLocal(t *testing.T) {
	s := startConsole(t, token)
	c := browserClient(t)
	login := get(t, c, s.URL+"/login").body
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		res := postForm(t, c, s.URL+"/login", url.Values{"csrf": {csrfOf(t, login)}, "next": {next}, "token": {token}})
		if res.header.Get("Location") != "/" {
			t.Errorf("next=%q redirected to %q, want /", next, res.header.Get("Location"))
		}
	}
}

func TestAuthAPI(t *testing.T) {
	s := startConsole(t, token)
	c := browserClient(t)
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token} {
		res := get(t, c, s.URL+"/api/overview", "Authorization", auth)
		if res.status != http.StatusUnauthorized || !strings.Contains(res.body, `"name": "Unauthorized"`) || res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d %s, want a JSON 401", auth, res.status, res.body)
		}
	}
	if res := get(t, c, s.URL+"/api/overview", "Authorization", "Bearer "+token); res.status != http.StatusOK {
		t.Errorf("with the token: %d, want 200", res.status)
	}
	res := do(t, c, "POST", s.URL+"/api/redrive", strings.NewReader(`{"customer":"`+bob+`","state":"unbillable","reason":"the customer has no billing account"}`),
		"Content-Type", "application/json", "Authorization", "Bearer "+token)
	if res.status != http.StatusOK || !strings.Contains(res.body, `"requeued": 10`) {
		t.Errorf("POST /api/redrive with the token: %d %s", res.status, res.body)
	}
}
