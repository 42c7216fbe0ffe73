package replicate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
	"github.com/imece/imece/pipeline/model"
)

// storiesCost is the cost of the embedded stories260K model, by its
// manifest's CID, as a node that knows the model prices receipts.
func storiesCost(t *testing.T) (ledger.Cost, []byte) {
	t.Helper()
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mf, err := m.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ledger.CostOf(mf)
	if err != nil {
		t.Fatal(err)
	}
	return c, mf.CID().Bytes()
}

// settle runs one receipt as the pipeline does: the server proposes and
// announces its Earn; the client, which received it directly, stores it,
// agrees, and announces both halves.
func settle(t *testing.T, server, client *node, e *ledger.Earn, c ledger.Cost) {
	t.Helper()
	if err := e.Price(c, ledger.DefaultGenesis()); err != nil {
		t.Fatal(err)
	}
	earn, err := server.st.Append(server.priv, ledger.KindEarn, e.Encode())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := server.r.Publish(ctx, earn); err != nil {
		t.Fatal(err)
	}
	if err := client.st.Add(earn); err != nil && !errors.Is(err, ledger.ErrDuplicate) {
		t.Fatal(err)
	}
	if err := client.r.Publish(ctx, earn); err != nil {
		t.Fatal(err)
	}
	got, _ := earn.Earn()
	if err := ledger.ValidateEarn(earn, got, c, ledger.DefaultGenesis()); err != nil {
		t.Fatal(err)
	}
	sp, err := ledger.SpendFor(earn)
	if err != nil {
		t.Fatal(err)
	}
	spend, err := client.st.Append(client.priv, ledger.KindSpend, sp.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := client.r.Publish(ctx, spend); err != nil {
		t.Fatal(err)
	}
}

// Receipts of a generation across three servers replicate to all five
// nodes, and every node derives the same balances, with every receipt
// settled.
func TestReceiptsReplicate(t *testing.T) {
	c, modelID := storiesCost(t)
	costs := store.WithCosts(func(m []byte) (ledger.Cost, bool) { return c, string(m) == string(modelID) })
	nodes := mesh(t, 5, []Option{WithAntiEntropy(0, 0)}, costs)
	client := nodes[0]
	servers := nodes[1:4]
	layers := uint16(c.Layers)
	split := []struct{ first, last uint16 }{{0, layers / 3}, {layers / 3, 2 * layers / 3}, {2 * layers / 3, layers}}
	for window := range uint32(3) {
		for i, s := range servers {
			e := &ledger.Earn{
				Client: client.key(), Session: [16]byte{1, 2, 3}, Window: window, Model: modelID,
				First: split[i].first, Last: split[i].last, From: window * 16, To: (window + 1) * 16,
				Tokens: 16, Multiplier: 1000, Reliability: 1000,
			}
			if split[i].last == layers {
				e.Results = 16
			}
			settle(t, s, client, e, c)
		}
	}
	waitSameHeads(t, 30*time.Second, 18, nodes...)

	keys := []ledger.Key{client.key(), servers[0].key(), servers[1].key(), servers[2].key(), nodes[4].key()}
	waitFor(t, 30*time.Second, func() (bool, string) {
		for _, k := range keys {
			ref, _ := nodes[0].st.Balance(k)
			for _, n := range nodes[1:] {
				got, _ := n.st.Balance(k)
				if got != ref {
					return false, fmt.Sprintf("balance of %s: %s has %+v, %s has %+v", k, nodes[0].name, ref, n.name, got)
				}
			}
		}
		return true, ""
	})
	bal, _ := nodes[4].st.Balance(client.key())
	if bal.Spent == 0 || bal.PendingSpend != 0 {
		t.Errorf("client balance on an uninvolved node: %+v, want every receipt settled", bal)
	}
	for _, s := range servers {
		if b, _ := nodes[4].st.Balance(s.key()); b.Earned == 0 || b.PendingEarn != 0 {
			t.Errorf("server %s balance %+v, want earnings settled", s.name, b)
		}
	}
}
