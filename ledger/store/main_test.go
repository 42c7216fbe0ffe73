package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"go.uber.org/goleak"

	"github.com/imece/imece/ledger"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// testKey derives a fixed key from a name, so failures name the same owners
// on every run.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("store test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(priv ed25519.PrivateKey) ledger.Key {
	var k ledger.Key
	copy(k[:], priv.Public().(ed25519.PublicKey))
	return k
}

// chain makes n signed, linked blocks of priv's chain after prev (nil for a
// new chain).
func chain(priv ed25519.PrivateKey, prev *ledger.Block, n int) []*ledger.Block {
	out := make([]*ledger.Block, 0, n)
	for range n {
		b := &ledger.Block{Seq: 1, Kind: ledger.KindEarn, Time: 1_700_000_000_000, Body: []byte("body")}
		if prev != nil {
			b.Seq, b.Prev, b.Time = prev.Seq+1, prev.ID(), prev.Time+1000
		}
		b.Sign(priv)
		out = append(out, b)
		prev = b
	}
	return out
}

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addAll(t testing.TB, s *Store, bs []*ledger.Block) {
	t.Helper()
	for _, b := range bs {
		if err := s.Add(b); err != nil {
			t.Fatalf("Add block %d: %v", b.Seq, err)
		}
	}
}

// spendChain makes a chain of n Spend blocks (see spendBody).
func spendChain(priv ed25519.PrivateKey, n int) []*ledger.Block {
	out := make([]*ledger.Block, 0, n)
	server := testKey("chain-server")
	var prev *ledger.Block
	for i := range n {
		b := &ledger.Block{Seq: 1, Kind: ledger.KindSpend, Time: 1_700_000_000_000, Body: spendBody(server, uint64(i))}
		if prev != nil {
			b.Seq, b.Prev, b.Time = prev.Seq+1, prev.ID(), prev.Time+1000
		}
		b.Sign(priv)
		out = append(out, b)
		prev = b
	}
	return out
}
