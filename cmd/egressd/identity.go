package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/storacha/go-ucanto/did"
	"github.com/storacha/go-ucanto/principal"
	"github.com/storacha/go-ucanto/principal/ed25519/signer"
	wrapped "github.com/storacha/go-ucanto/principal/signer"
)

// keyFile is where the service key lives in the data directory when no --key is given.
const keyFile = "service.key"

// loadSigner returns the service identity: the --key if given, otherwise the
// key in dataDir (generated on first use when create is set), wrapped in
// --did when that is a did:web. created reports a newly generated key.
func loadSigner(dataDir, key, didWeb string, create bool) (s principal.Signer, created bool, err error) {
	if key == "" {
		key, created, err = readOrCreateKey(filepath.Join(dataDir, keyFile), create)
		if err != nil {
			return nil, false, err
		}
	}
	s, err = signer.Parse(strings.TrimSpace(key))
	if err != nil {
		return nil, false, fmt.Errorf("service key is not an ed25519 key in multibase (Mg...) form: %w", err)
	}
	if didWeb == "" {
		return s, created, nil
	}
	id, err := did.Parse(didWeb)
	if err != nil || !strings.HasPrefix(didWeb, "did:web:") {
		return nil, false, fmt.Errorf("--did %q: expected a did:web", didWeb)
	}
	w, err := wrapped.Wrap(s, id)
	if err != nil {
		return nil, false, fmt.Errorf("--did: %w", err)
	}
	return w, created, nil
}

func readOrCreateKey(path string, create bool) (string, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return string(b), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading service key: %w", err)
	}
	if !create {
		return "", false, fmt.Errorf("no service key in %s: run `egressd serve` once, or pass --key", filepath.Dir(path))
	}
	s, err := signer.Generate()
	if err != nil {
		return "", false, fmt.Errorf("generating service key: %w", err)
	}
	key, err := signer.Format(s)
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("creating data directory: %w", err)
	}
	// O_EXCL: two processes starting together on a fresh directory must not
	// end up with different keys.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readOrCreateKey(path, false)
	}
	if err != nil {
		return "", false, fmt.Errorf("saving service key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("saving service key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, fmt.Errorf("saving service key: %w", err)
	}
	return key, true, f.Close()
}
