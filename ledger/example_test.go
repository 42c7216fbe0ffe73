package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
)

// A server proposes a receipt for one settlement window, the client checks it
// and agrees, and a State (any node's) applies both halves and answers balances.
// The server's only client is no independent evidence of its work (it could be
// the server's own second identity), so the server is credited what the client
// spent, not the 25.668 GFT its proposal prices: see the package doc's "Trust".
func Example() {
	g := ledger.DefaultGenesis()
	// Normally ledger.CostOf(manifest); here a 2-layer f16 model by hand.
	layer := ledger.Matrices{Weights: 50_000_000, Bytes: []ledger.TypeBytes{{DType: kernels.F16, Bytes: 100_000_000}}}
	cost := ledger.Cost{Layers: 2, QDim: 4096, PerLayer: []ledger.Matrices{layer, layer},
		Head: ledger.Matrices{Weights: 100_000_000, Bytes: []ledger.TypeBytes{{DType: kernels.F16, Bytes: 200_000_000}}}}
	sum := sha256.Sum256([]byte("manifest"))
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	model := cid.NewCidV1(cid.Raw, mh).Bytes()

	serverPriv := ed25519.NewKeyFromSeed(make([]byte, 32))
	clientPriv := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	var server, client ledger.Key
	copy(server[:], serverPriv.Public().(ed25519.PublicKey))
	copy(client[:], clientPriv.Public().(ed25519.PublicKey))

	// The server, serving both layers, settles 64 generated tokens.
	e := &ledger.Earn{
		Client: client, Session: [16]byte{1}, Window: 0, Model: model,
		First: 0, Last: 2, From: 0, To: 64, Results: 64, Tokens: 64,
		Multiplier: 1000, Reliability: 1000, // from its node record
	}
	if err := e.Price(cost, g); err != nil {
		panic(err)
	}
	earn, err := ledger.NewEarn(serverPriv, ledger.Head{}, e, 1_700_000_000_000)
	if err != nil {
		panic(err)
	}

	// The client checks the proposal it received and agrees.
	got, err := earn.Earn()
	if err != nil {
		panic(err)
	}
	if err := ledger.ValidateEarn(earn, got, cost, g); err != nil {
		panic(err)
	}
	s, _ := ledger.SpendFor(earn)
	spend, err := ledger.NewSpend(clientPriv, ledger.Head{}, s, 1_700_000_000_500)
	if err != nil {
		panic(err)
	}

	// Any node applies both halves, in either order.
	st := ledger.NewState(g, func(m []byte) (ledger.Cost, bool) { return cost, string(m) == string(model) })
	if _, err := st.Apply(spend); err != nil {
		panic(err)
	}
	res, err := st.Apply(earn)
	if err != nil {
		panic(err)
	}
	fmt.Println("settled:", len(res.Settled))
	fmt.Println("server earned:", ledger.FormatGFT(int64(st.Balance(server).Earned)))
	fmt.Println("client spent:", ledger.FormatGFT(int64(st.Balance(client).Spent)))
	fmt.Println("client available:", ledger.FormatGFT(st.Balance(client).Available()))
	// Output:
	// settled: 1
	// server earned: 12.800 GFT
	// client spent: 12.800 GFT
	// client available: 9987.200 GFT
}
