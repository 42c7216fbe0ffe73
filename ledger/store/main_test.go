package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"go.uber.org/goleak"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
)

func TestMain(m *testing.M) {
	if crashChild() || flipChild() {
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
// new chain): Spend blocks agreeing to made-up proposals, which the chain
// rules accept and which stay pending.
func chain(priv ed25519.PrivateKey, prev *ledger.Block, n int) []*ledger.Block {
	out := make([]*ledger.Block, 0, n)
	server := testKey("chain-server")
	for range n {
		b := &ledger.Block{Seq: 1, Kind: ledger.KindSpend, Time: 1_700_000_000_000}
		if prev != nil {
			b.Seq, b.Prev, b.Time = prev.Seq+1, prev.ID(), prev.Time+1000
		}
		b.Body = spendBody(server, b.Seq)
		b.Sign(priv)
		out = append(out, b)
		prev = b
	}
	return out
}

// spendChain is a new chain of n blocks (see chain).
func spendChain(priv ed25519.PrivateKey, n int) []*ledger.Block { return chain(priv, nil, n) }

// spendBody is a well-formed Spend body agreeing to a made-up proposal of
// server's: the chain rules accept it; its receipt stays pending without its
// other half.
func spendBody(server ed25519.PrivateKey, n uint64) []byte {
	var proposal ledger.BlockID
	proposal[0], proposal[31] = 1, byte(n)
	sp := ledger.Spend{Server: pub(server), Proposal: proposal, Seq: n + 1000, Amount: 1000}
	return sp.Encode()
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
			t.Fatalf("Add block %d of %s: %v", b.Seq, b.Owner, err)
		}
	}
}

// testModel names a made-up model as model manifests are named.
func testModel(name string) []byte {
	sum := sha256.Sum256([]byte(name))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, mh).Bytes()
}

// testCost is a small made-up model: 4 layers of 1M f16 weights, attention
// width 256, a 2M-weight head.
func testCost() ledger.Cost {
	layer := ledger.Matrices{Weights: 1_000_000, Bytes: []ledger.TypeBytes{{DType: kernels.F16, Bytes: 2_000_000}}}
	return ledger.Cost{
		Layers:   4,
		QDim:     256,
		PerLayer: []ledger.Matrices{layer, layer, layer, layer},
		Head:     ledger.Matrices{Weights: 2_000_000, Bytes: []ledger.TypeBytes{{DType: kernels.F16, Bytes: 4_000_000}}},
	}
}

// knows resolves the named test models to testCost.
func knows(names ...string) func([]byte) (ledger.Cost, bool) {
	known := map[string]bool{}
	for _, n := range names {
		known[string(testModel(n))] = true
	}
	return func(m []byte) (ledger.Cost, bool) { return testCost(), known[string(m)] }
}

// earnFor is a priced proposal of window w to client on model name.
func earnFor(t testing.TB, client ledger.Key, name string, window uint32) *ledger.Earn {
	t.Helper()
	e := &ledger.Earn{
		Client: client, Session: [16]byte{7}, Window: window, Model: testModel(name),
		First: 0, Last: 4, From: 0, To: 16, Results: 1, Tokens: 1,
		Multiplier: 1000, Reliability: 1000,
	}
	if err := e.Price(testCost(), ledger.DefaultGenesis()); err != nil {
		t.Fatal(err)
	}
	return e
}
