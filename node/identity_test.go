package node

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityCreatedPrivateAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	key, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("key file mode %#o, want 0600", got)
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := di.Mode().Perm(); got != 0o700 {
			t.Errorf("data dir mode %#o, want 0700", got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only %s (no temporary file left)", len(entries), IdentityFile)
	}

	again, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(key)
	id2, _ := peer.IDFromPrivateKey(again)
	if id1 != id2 {
		t.Fatalf("second call gave peer %s, first %s: identity not reused", id2, id1)
	}
}

func TestIdentityRefusesBadFiles(t *testing.T) {
	secp, _, err := crypto.GenerateKeyPair(crypto.Secp256k1, 0)
	if err != nil {
		t.Fatal(err)
	}
	otherType, err := crypto.MarshalPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	good := func(t *testing.T, dir string) []byte {
		if _, err := LoadOrCreateIdentity(dir); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, IdentityFile))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    error
	}{
		{"group readable", func(t *testing.T, path string) {
			good(t, filepath.Dir(path))
			if err := os.Chmod(path, 0o640); err != nil {
				t.Fatal(err)
			}
		}, ErrInsecureIdentity},
		{"world readable", func(t *testing.T, path string) {
			good(t, filepath.Dir(path))
			if err := os.Chmod(path, 0o604); err != nil {
				t.Fatal(err)
			}
		}, ErrInsecureIdentity},
		{"empty", func(t *testing.T, path string) {
			writeFile(t, path, nil)
		}, ErrInvalidIdentity},
		{"garbage", func(t *testing.T, path string) {
			writeFile(t, path, []byte("this is not a key"))
		}, ErrInvalidIdentity},
		{"truncated", func(t *testing.T, path string) {
			raw := good(t, filepath.Dir(path))
			writeFile(t, path, raw[:len(raw)/2])
		}, ErrInvalidIdentity},
		{"secp256k1 key", func(t *testing.T, path string) {
			writeFile(t, path, otherType)
		}, ErrInvalidIdentity},
		{"oversized", func(t *testing.T, path string) {
			writeFile(t, path, make([]byte, maxIdentityFileSize+1))
		}, ErrInvalidIdentity},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrInvalidIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tt.want == ErrInsecureIdentity {
				t.Skip("no Unix permission bits on Windows")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, IdentityFile)
			tt.prepare(t, path)
			before, _ := os.ReadFile(path)

			_, err := LoadOrCreateIdentity(dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
			t.Logf("error shown: %v", err)
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("a refused key file was modified")
			}
		})
	}
}

func TestIdentityNeedsDataDir(t *testing.T) {
	if _, err := LoadOrCreateIdentity(""); err == nil {
		t.Fatal("empty data dir accepted")
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
