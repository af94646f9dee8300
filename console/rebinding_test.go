package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestTokenlessConsoleAnswersOnlyLoopbackHosts: serve refuses a token-less console
// beyond loopback because then it is only this machine's. A web page the
// operator opens on this machine can still reach it by DNS rebinding: its
// own name, re-pointed at 127.0.0.1, makes the console same-origin with the
// page, which then reads every customer's figures and posts re-drives
// (JSON content type and all). The browser sends that name as Host; the
// console must answer only to the names it is served under.
func TestTokenlessConsoleAnswersOnlyLoopbackHosts(t *testing.T) {
	s := startConsole(t, "")
	c := browserClient(t)
	req, err := http.NewRequest(http.MethodGet, s.URL+"/api/customers", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebind.attacker.example:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Errorf("GET /api/customers with Host %s: 200, every customer's figures to a rebound page", req.Host)
	}
	req2, _ := http.NewRequest(http.MethodPost, s.URL+"/api/redrive", strings.NewReader(`{"customer":"`+alice+`","state":"failed"}`))
	req2.Host = req.Host
	req2.Header.Set("Content-Type", "application/json")
	res2, err := c.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if len(s.src.redriven()) != 0 {
		t.Errorf("POST /api/redrive with Host %s: %d, re-drove %v", req.Host, res2.StatusCode, s.src.redriven())
	}
}
