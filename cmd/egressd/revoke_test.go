package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/storacha/go-ucanto/core/delegation"
	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"

	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/client"
	"github.com/egressd/egressd/internal/awstest"
)

// TestDelegateExpiresInAYearByDefault: a delegation that never expires is
// good until revoked, so `egressd delegate` gives a year unless told 0.
func TestDelegateExpiresInAYearByDefault(t *testing.T) {
	_, spaceKey := generateKey(t)
	gatewayDID, _ := generateKey(t)
	delegate := func(extra ...string) delegation.Delegation {
		t.Helper()
		out := run(t, append([]string{"delegate", "--space-key", spaceKey, "--audience", gatewayDID}, extra...)...)
		dlg, err := delegation.Parse(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		return dlg
	}
	yearAhead := time.Now().Add(365 * 24 * time.Hour).Unix()
	if exp := delegate().Expiration(); exp == nil || int64(*exp) < yearAhead-60 || int64(*exp) > yearAhead+60 {
		t.Fatalf("delegate's default expiration = %v, want about a year from now (%d)", exp, yearAhead)
	}
	if exp := delegate("--expiration", "0").Expiration(); exp != nil {
		t.Fatalf("delegate --expiration 0 expires at %d, want never", *exp)
	}
	inAnHour := time.Now().Add(time.Hour).Unix()
	if exp := delegate("--expiration", "1h").Expiration(); exp == nil || int64(*exp) < inAnHour-60 || int64(*exp) > inAnHour+60 {
		t.Fatalf("delegate --expiration 1h expires at %v, want about %d", exp, inAnHour)
	}
}

// TestRevocationSurvivesRestart: a space revokes its gateway's delegation;
// the revocation holds after `serve` is killed and started again on the
// same data directory.
func TestRevocationSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data)
	serviceDID := strings.TrimSpace(run(t, "id", "--data-dir", data))
	spaceDID, spaceKey := generateKey(t)
	gatewayDID, gatewayKey := generateKey(t)
	run(t, "provision", "--data-dir", data, "--space", spaceDID, "--customer", "did:mailto:example.com:alice")

	proof := strings.TrimSpace(run(t, "delegate", "--space-key", spaceKey, "--audience", gatewayDID))
	dlg, err := delegation.Parse(proof)
	if err != nil {
		t.Fatal(err)
	}
	if v := recordAt(t, nil, srv.URL, gatewayKey, proof); v.Error != nil {
		t.Fatalf("record failed: %s", v.Error)
	}

	revokeAt(t, srv.URL, spaceKey, serviceDID, dlg)
	if v := recordAt(t, nil, srv.URL, gatewayKey, proof); !revoked(v) {
		t.Fatalf("record with a revoked delegation: ok %s, error %s; want it refused as revoked", v.Ok, v.Error)
	}

	// kill -9: an acknowledged revocation is already on disk.
	srv.kill()
	srv = startServe(t, data)
	if v := recordAt(t, nil, srv.URL, gatewayKey, proof); !revoked(v) {
		t.Fatalf("record after a restart: ok %s, error %s; want it refused as revoked", v.Ok, v.Error)
	}
	srv.stop(t)
}

// TestRevocationOnAWS: two replicas on DynamoDB. The one that records a
// revocation applies it at once; the other within its cache's TTL.
func TestRevocationOnAWS(t *testing.T) {
	env := awsEnv(t)
	tables := []string{"--tables", "dynamodb://" + awstest.Name("revoke") + "-"}
	out := runEnv(t, env, append([]string{"aws", "init"}, tables...)...)
	if !strings.Contains(out, "ready") {
		t.Fatalf("aws init printed %q", out)
	}
	serviceDID, serviceKey := generateKey(t)
	spaceDID, spaceKey := generateKey(t)
	gatewayDID, gatewayKey := generateKey(t)
	runEnv(t, env, append([]string{"provision", "--key", serviceKey, "--space", spaceDID, "--customer", "did:mailto:example.com:alice"}, tables...)...)
	proof := strings.TrimSpace(run(t, "delegate", "--space-key", spaceKey, "--audience", gatewayDID))
	dlg, err := delegation.Parse(proof)
	if err != nil {
		t.Fatal(err)
	}

	args := append([]string{"--worker=false", "--key", serviceKey}, tables...)
	a, b := startServeEnv(t, env, t.TempDir(), args...), startServeEnv(t, env, t.TempDir(), args...)
	for _, replica := range []*serveProcess{a, b} {
		if v := recordAt(t, env, replica.URL, gatewayKey, proof); v.Error != nil {
			t.Fatalf("record failed: %s", v.Error)
		}
	}
	revokeAt(t, a.URL, spaceKey, serviceDID, dlg)
	if v := recordAt(t, env, a.URL, gatewayKey, proof); !revoked(v) {
		t.Fatalf("record at the revoking replica: ok %s, error %s; want it refused as revoked", v.Ok, v.Error)
	}
	deadline := time.Now().Add(15 * time.Second)
	for v := recordAt(t, env, b.URL, gatewayKey, proof); !revoked(v); v = recordAt(t, env, b.URL, gatewayKey, proof) {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica still records with the revoked delegation: ok %s, error %s", v.Ok, v.Error)
		}
		time.Sleep(500 * time.Millisecond)
	}
	a.stop(t)
	b.stop(t)
}

// recordAt sends one record with the CLI, as the gateway with proof, and
// returns the receipt, a success or a failure (record exits 1 on those).
func recordAt(t *testing.T, env []string, url, gatewayKey, proof string) receiptView {
	t.Helper()
	r := runCodeEnv(t, env, "record", "--url", url, "--key", gatewayKey, "--proof", proof,
		"--resource", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--bytes", "1024")
	if r.code > 1 {
		t.Fatalf("egressd record: exit %d\n%s", r.code, r.stderr)
	}
	return decodeView(t, r.stdout)
}

// revoked reports whether a record was refused because its delegation was revoked.
func revoked(v receiptView) bool {
	var failure struct{ Name, Message string }
	return json.Unmarshal(v.Error, &failure) == nil && strings.Contains(failure.Message, "has been revoked")
}

// revokeAt has the space revoke dlg, as a client of the service at url.
func revokeAt(t *testing.T, url, spaceKey, serviceDID string, dlg delegation.Delegation) {
	t.Helper()
	space, err := signer.Parse(spaceKey)
	if err != nil {
		t.Fatal(err)
	}
	service, err := did.Parse(serviceDID)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := capabilities.Revoke.Invoke(space, service, space.DID().String(), capabilities.RevokeCaveats{Ucan: dlg.Link()},
		delegation.WithProof(delegation.FromDelegation(dlg)))
	if err != nil {
		t.Fatal(err)
	}
	rcpts, err := client.New(url).Execute(context.Background(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if name, msg := client.OutcomeFailure(rcpts[0]); name != "" {
		t.Fatalf("revoking: %s: %s", name, msg)
	}
}
