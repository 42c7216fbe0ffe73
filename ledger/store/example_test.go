package store_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

// A node opens its store, appends its half of a receipt, takes its peer's
// half from the network, and checks everything.
func Example() {
	dir, _ := os.MkdirTemp("", "imece-store-example")
	defer os.RemoveAll(dir)
	s, err := store.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	server := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	client := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 1))
	var serverKey ledger.Key
	copy(serverKey[:], server.Public().(ed25519.PublicKey))

	// The client agrees to a proposal it has checked (here a made-up one,
	// which stays pending: the store has not seen the proposal).
	agreement := &ledger.Spend{Server: serverKey, Proposal: ledger.BlockID{1}, Seq: 1, Amount: 500}
	b, err := s.Append(client, ledger.KindSpend, agreement.Encode())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("appended block", b.Seq)

	// The same block again, as gossip delivers it: nothing changes.
	fmt.Println("again:", s.Add(b))

	bal, _ := s.Balance(b.Owner)
	fmt.Println("pending spend:", ledger.FormatGFT(int64(bal.PendingSpend)))

	r, err := s.Verify(context.Background())
	fmt.Println("verified", r.Blocks, "blocks:", err)
	// Output:
	// appended block 1
	// again: ledger: duplicate block: block 1 of 4cb5abf6ad79
	// pending spend: 0.500 GFT
	// verified 1 blocks: <nil>
}
