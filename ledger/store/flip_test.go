package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// flipDirEnv, when set, makes the test binary a flip-test child: it opens,
// verifies and exports the store in that directory, prints what happened and
// exits. A child because Badger leaks goroutines when its Open fails halfway,
// which the parent's leak check would blame on the store.
const flipDirEnv = "IMECE_STORE_FLIP_DIR"

// flipChild runs the child when the environment asks for it.
func flipChild() bool {
	dir := os.Getenv(flipDirEnv)
	if dir == "" {
		return false
	}
	fmt.Println(inspect(dir))
	os.Exit(0)
	return true
}

// inspect opens, verifies and exports dir: "ok <export hash>" when all pass,
// "reported: <error>" when one refuses.
func inspect(dir string) string {
	s, err := Open(dir)
	if err != nil {
		return "reported: " + err.Error()
	}
	defer s.Close()
	if _, err := s.Verify(context.Background()); err != nil {
		return "reported: " + err.Error()
	}
	h := sha256.New()
	if err := s.Export(context.Background(), h); err != nil {
		return "reported: " + err.Error()
	}
	return "ok " + hex.EncodeToString(h.Sum(nil))
}

// TestRandomFlips flips one random bit of one random file of a closed store,
// many times: the store must report the damage or be unharmed by it (the
// same export as before), and never panic.
func TestRandomFlips(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	base := t.TempDir()
	s := openTest(t, base)
	threeChains(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := inspect(base)
	if !strings.HasPrefix(want, "ok ") {
		t.Fatalf("the undamaged store: %s", want)
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	reported := 0
	const flips = 40
	for range flips {
		dir := filepath.Join(t.TempDir(), "store")
		if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		name := entries[rng.IntN(len(entries))].Name()
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		at := rng.IntN(len(data))
		data[at] ^= 1 << rng.IntN(8)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), flipDirEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		got := strings.TrimSpace(string(out))
		switch {
		case err != nil:
			t.Fatalf("seed %d: a bit flipped at %d of %s: the process failed (%v):\n%s", seed, at, name, err, got)
		case strings.HasPrefix(got, "reported: "):
			reported++
		case got != want:
			t.Fatalf("seed %d: a bit flipped at %d of %s went unnoticed: %s, want %s", seed, at, name, got, want)
		}
		t.Logf("%s@%d: %.120s", name, at, got)
	}
	t.Logf("seed %d: %d of %d flips reported, the others harmless", seed, reported, flips)
}
