package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// IdentityFile is the name of the key file inside a node's data directory
// (DESIGN.md §2). Its peer ID is the node's wallet: losing the file loses the
// credits earned under it, so it is never overwritten.
const IdentityFile = "identity.key"

// maxIdentityFileSize bounds what LoadOrCreateIdentity reads: a marshalled
// Ed25519 key is 68 bytes, so anything much larger is not an identity key.
const maxIdentityFileSize = 4 << 10

var (
	// ErrInsecureIdentity means the identity key file can be read or written by
	// users other than its owner. Whoever reads the key can spend the node's
	// credits, so the node refuses to start rather than silently fixing modes.
	ErrInsecureIdentity = errors.New("identity key file is accessible to group or others")

	// ErrInvalidIdentity means the identity key file exists but does not hold an
	// Ed25519 libp2p private key (truncated, corrupt, or another key type). The
	// file is left alone: it may be the only copy of a wallet.
	ErrInvalidIdentity = errors.New("identity key file does not hold an Ed25519 private key")
)

// LoadOrCreateIdentity returns the node's identity: the Ed25519 libp2p key in
// <dataDir>/identity.key. On first run it creates dataDir (mode 0700) and the
// key (mode 0600); afterwards it loads the same key, so the peer ID, and with
// it the node's credits, survive restarts.
//
// It never overwrites an existing file. A key file with group or other
// permission bits fails with ErrInsecureIdentity; one that does not hold an
// Ed25519 private key fails with ErrInvalidIdentity.
func LoadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory")
	}
	path := filepath.Join(dataDir, IdentityFile)
	key, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	return createIdentity(path)
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: %s is not a regular file: %w", path, ErrInvalidIdentity)
	}
	// Windows has no Unix permission bits; its ACLs are the user's business.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s has mode %#o, want 0600 (chmod 600 it): %w", path, perm, ErrInsecureIdentity)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxIdentityFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	if len(raw) > maxIdentityFileSize {
		return nil, fmt.Errorf("identity: %s is larger than %d bytes: %w", path, maxIdentityFileSize, ErrInvalidIdentity)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w (%v)", path, ErrInvalidIdentity, err)
	}
	if key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity: %s holds a %s key: %w", path, key.Type(), ErrInvalidIdentity)
	}
	return key, nil
}

// createIdentity writes a fresh key to a temporary file and hard-links it into
// place. The link fails if path exists, so two processes starting at once
// cannot overwrite each other's key, and a crash mid-write never leaves a
// half-written identity.key behind.
func createIdentity(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: marshal key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp") // created with mode 0600
	if err != nil {
		return nil, fmt.Errorf("identity: create temporary key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("identity: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("identity: sync key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("identity: close key: %w", err)
	}
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some filesystems have no hard links: fall back to an exclusive create,
		// which still never overwrites.
		err = writeExclusive(path, raw)
	}
	if errors.Is(err, fs.ErrExist) {
		// Another process won the race; its key is the identity.
		return loadIdentity(path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: install %s: %w", path, err)
	}
	syncDir(dir)
	return key, nil
}

func writeExclusive(path string, raw []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// syncDir makes the new directory entry durable where the platform allows it.
// A failure is not fatal: the key file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// LoadIdentity reads an existing identity as an Ed25519 key, for tools that
// read a node's data without running it (imece ledger).
func LoadIdentity(dataDir string) (ed25519.PrivateKey, error) {
	key, err := loadIdentity(filepath.Join(dataDir, IdentityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no node identity in %s: %w", dataDir, err)
	}
	if err != nil {
		return nil, err
	}
	raw, err := key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity in %s is not an Ed25519 key", dataDir)
	}
	return ed25519.PrivateKey(raw), nil
}
