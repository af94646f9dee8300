package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/storacha/go-ucanto/did"

	"github.com/egressd/egressd/client"
)

// TestKeyRotation moves a service to a new key the way the README says:
// serve with key A, then with key B and --alias A's DID. Gateways that still
// address A keep recording (the audience is accepted, and the consumer
// records provisioned under A are found), receipts recorded under A are
// still served, and each receipt verifies against the key that signed it.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	oldDID, oldKey := generateKey(t)
	newDID, newKey := generateKey(t)

	spaceDID, spaceKey := generateKey(t)
	gatewayDID, gatewayKey := generateKey(t)
	proof := strings.TrimSpace(run(t, "delegate", "--space-key", spaceKey, "--audience", gatewayDID))
	// Provisioned under A, the provider then.
	run(t, "provision", "--data-dir", data, "--key", oldKey, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")
	record := func(url string, extra ...string) receiptView {
		t.Helper()
		args := append([]string{"record", "--url", url, "--key", gatewayKey, "--proof", proof,
			"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "1024"}, extra...)
		v := decodeView(t, run(t, args...))
		if v.Error != nil {
			t.Fatalf("record %v failed: %s", extra, v.Error)
		}
		return v
	}

	srv := startServe(t, data, "--key", oldKey)
	old := record(srv.URL)
	if old.Issuer != oldDID || old.Verified == nil || !*old.Verified {
		t.Fatalf("receipt under A: issuer %s verified %v, want %s verified", old.Issuer, old.Verified, oldDID)
	}
	srv.stop(t)

	srv = startServe(t, data, "--key", newKey, "--alias", oldDID)
	var info struct {
		DID     string   `json:"did"`
		Aliases []string `json:"aliases"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, srv.URL+"/")), &info); err != nil || info.DID != newDID || len(info.Aliases) != 1 || info.Aliases[0] != oldDID {
		t.Fatalf("GET / after rotation = %+v (%v), want %s with alias %s", info, err, newDID, oldDID)
	}
	// A gateway still configured with A's DID; and one that asks GET /.
	viaOld := record(srv.URL, "--service", oldDID)
	viaNew := record(srv.URL)
	for _, v := range []receiptView{viaOld, viaNew} {
		if v.Issuer != newDID {
			t.Errorf("receipt after rotation issued by %s, want the new key's %s", v.Issuer, newDID)
		}
	}
	// Signed by B, so checked against A's key (what `record --service A`
	// does) it does not verify: a gateway that checks receipts must check
	// them against the issuer's key, B's.
	if viaOld.Verified != nil && *viaOld.Verified {
		t.Errorf("receipt signed by B verified against A's key")
	}
	if viaNew.Verified == nil || !*viaNew.Verified {
		t.Errorf("receipt after rotation, addressed to B, not verified: %+v", viaNew)
	}

	// The receipt from before the rotation is still served, as it was
	// signed: by A.
	fetched := decodeView(t, run(t, "receipt", "--url", srv.URL, old.Invocation))
	if fetched.Receipt != old.Receipt || fetched.Issuer != oldDID {
		t.Fatalf("old receipt after rotation: %+v, want %s issued by %s", fetched, old.Receipt, oldDID)
	}
	// egressd receipt checks it against the alias it was signed by, which
	// the service still answers to.
	if fetched.Verified == nil || !*fetched.Verified {
		t.Errorf("egressd receipt of the old receipt: verified %v, want true (signed by the alias %s)", deref(fetched.Verified), oldDID)
	}
	rcpt, err := client.New(srv.URL).Receipt(ctx, old.Invocation)
	if err != nil {
		t.Fatal(err)
	}
	a, err := did.Parse(oldDID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := client.Verify(rcpt, a, a); err != nil || !ok {
		t.Errorf("old receipt against A's key: %v, %v; want verified", ok, err)
	}
	b, _ := did.Parse(newDID)
	if ok, _ := client.Verify(rcpt, b, b); ok {
		t.Errorf("old receipt verified against B's key")
	}

	// Without the alias, invocations addressed to A are refused, and the
	// space provisioned under A is not found.
	srv.stop(t)
	srv = startServe(t, data, "--key", newKey)
	refused := decodeView(t, runFailsOut(t, "record", "--url", srv.URL, "--key", gatewayKey, "--proof", proof, "--service", oldDID,
		"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "1024"))
	if !strings.Contains(string(refused.Error), "InvalidAudience") {
		t.Errorf("addressed to A without --alias: %s, want InvalidAudience", refused.Error)
	}
	srv.stop(t)
}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s (%v)", url, res.StatusCode, body, err)
	}
	return string(body)
}

// runFailsOut runs an egressd subcommand that must fail and returns its
// stdout (record prints a failure receipt, then exits 1).
func runFailsOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(egressdBinary(t), args...)
	cmd.Env = isolatedEnv()
	out, err := cmd.Output()
	if err == nil {
		t.Fatalf("egressd %s succeeded, want a failure", strings.Join(args, " "))
	}
	return string(out)
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
