package main_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestTour runs the README's five-minute tour with the real binary: serve,
// provision and set the customer while it runs, delegate, record, fetch.
func TestTour(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data)

	serviceDID := strings.TrimSpace(run(t, "id", "--data-dir", data))
	if !strings.HasPrefix(serviceDID, "did:key:z6Mk") {
		t.Fatalf("egressd id printed %q", serviceDID)
	}

	// Every flag can come from the environment instead.
	cmd := exec.Command(egressdBinary(t), "id")
	cmd.Env = isolatedEnv("EGRESSD_DATA_DIR=" + data)
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != serviceDID {
		t.Fatalf("EGRESSD_DATA_DIR: egressd id printed %q (%v), want %s", out, err, serviceDID)
	}

	spaceDID, spaceKey := generateKey(t)
	gatewayDID, gatewayKey := generateKey(t)

	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")
	run(t, "customer", "set", "--data-dir", data, "--customer", "did:mailto:example.com:alice", "--stripe-customer", "cus_tour")
	proof := strings.TrimSpace(run(t, "delegate", "--space-key", spaceKey, "--audience", gatewayDID))

	out := run(t, "record", "--url", srv.URL, "--key", gatewayKey, "--proof", proof,
		"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "1048576")
	recorded := decodeView(t, out)
	if recorded.Error != nil {
		t.Fatalf("record failed: %s", recorded.Error)
	}
	var ok struct {
		Space string `json:"space"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal(recorded.Ok, &ok); err != nil || ok.Space != spaceDID || ok.Bytes != 1048576 {
		t.Fatalf("record receipt ok = %s (%v)", recorded.Ok, err)
	}
	if recorded.Issuer != serviceDID || recorded.Verified == nil || !*recorded.Verified {
		t.Fatalf("receipt issuer %s verified %v, want %s verified", recorded.Issuer, recorded.Verified, serviceDID)
	}

	fetched := decodeView(t, run(t, "receipt", "--url", srv.URL, recorded.Invocation))
	if fetched.Receipt != recorded.Receipt {
		t.Fatalf("fetched receipt %s, recorded %s", fetched.Receipt, recorded.Receipt)
	}

	// The same invocation flags with a bad value give a clear error.
	stderr := runFails(t, "record", "--url", srv.URL, "--key", gatewayKey, "--proof", proof, "--resource", "not-a-cid", "--bytes", "1")
	if !strings.Contains(stderr, "--resource") {
		t.Fatalf("bad --resource error: %s", stderr)
	}
	stderr = runFails(t, "provision", "--data-dir", data, "--space", "nope", "--customer", "did:mailto:example.com:alice")
	if !strings.Contains(stderr, "--space") {
		t.Fatalf("bad --space error: %s", stderr)
	}
	srv.stop(t)
}

type receiptView struct {
	Receipt    string          `json:"receipt"`
	Invocation string          `json:"invocation"`
	Issuer     string          `json:"issuer"`
	Ok         json.RawMessage `json:"ok"`
	Error      json.RawMessage `json:"error"`
	Verified   *bool           `json:"verified"`
}

func decodeView(t *testing.T, out string) receiptView {
	t.Helper()
	var v receiptView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not a receipt as JSON: %v\n%s", err, out)
	}
	return v
}

// generateKey runs `egressd key generate` and returns the DID and key.
func generateKey(t *testing.T) (string, string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(run(t, "key", "generate")), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "# did:key:") || !strings.HasPrefix(lines[1], "Mg") {
		t.Fatalf("key generate printed %q", lines)
	}
	return strings.TrimPrefix(lines[0], "# "), lines[1]
}
