package testnet

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
)

// snapshot is what a node's ledger says about every chain it holds.
type snapshot struct {
	heads    map[ledger.Key]ledger.Head
	balances map[ledger.Key]ledger.Balance
}

func ledgerOf(t *testing.T, n *node.Node) snapshot {
	t.Helper()
	st := n.Ledger().Store()
	heads, err := st.Heads()
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{heads: heads, balances: map[ledger.Key]ledger.Balance{}}
	for k := range heads {
		b, err := st.Balance(k)
		if err != nil {
			t.Fatal(err)
		}
		s.balances[k] = b
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return maps.Equal(s.heads, o.heads) && maps.Equal(s.balances, o.balances)
}

// waitIdentical waits until every node holds the same chains and balances.
func waitIdentical(t *testing.T, nodes []*node.Node, timeout time.Duration) snapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		first := ledgerOf(t, nodes[0])
		same := true
		for _, n := range nodes[1:] {
			if !ledgerOf(t, n).equal(first) {
				same = false
				break
			}
		}
		if same {
			return first
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				s := ledgerOf(t, n)
				t.Logf("%s: %d chains, heads %v", n.ID(), len(s.heads), s.heads)
			}
			t.Fatalf("ledgers still differ after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLedgerAfterGeneration: a generation across three volunteers leaves every
// node (bootstrap, volunteers, client, and a node that was offline throughout and
// catches up when it returns) with identical chains and balances; the client paid
// exactly what the volunteers' receipts say and each volunteer earned.
func TestLedgerAfterGeneration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := Start(ctx, WithNodes(3))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// A node that joins, leaves, and is away during the generation.
	away, err := n.Restart(ctx, "away")
	if err != nil {
		t.Fatal(err)
	}
	away.Close()

	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 124,
		OnText: func(s string) error { out.WriteString(s); return nil }}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if out.String() != reference {
		t.Fatalf("got %q", out.String())
	}
	nodes := append([]*node.Node{n.Bootstrap, c}, n.Volunteers...)
	final := waitIdentical(t, nodes, 20*time.Second)

	client := c.Ledger().Self()
	cb := final.balances[client]
	if cb.Spent == 0 || cb.PendingSpend != 0 {
		t.Fatalf("client balance %+v: want everything spent settled", cb)
	}
	var earned uint64
	for _, v := range n.Volunteers {
		vb := final.balances[v.Ledger().Self()]
		if vb.Earned == 0 || vb.PendingEarn != 0 {
			t.Errorf("volunteer balance %+v: want earnings, all settled", vb)
		}
		earned += vb.Earned
	}
	// 124 tokens settled every 64: two windows per hop, three hops.
	if got := final.heads[client].Seq; got != 6 {
		t.Errorf("client chain has %d blocks, want 6 agreements", got)
	}

	back, err := n.Restart(ctx, "away")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	caught := waitIdentical(t, append(nodes, back), 20*time.Second)
	if !maps.Equal(caught.heads, final.heads) {
		t.Fatal("the network's chains changed while the node was coming back")
	}
}

// TestInsufficientCredits: on a network whose starter allowance cannot pay for a
// session, the client is refused with a message saying what it has and needs.
func TestInsufficientCredits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := ledger.DefaultGenesis()
	g.StarterAllowance = 1 // one milli-GFT
	n, err := Start(ctx, WithNodes(2), WithGenesis(g))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	_, err = n.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 50})
	var he *pipeline.HopError
	if !errors.As(err, &he) || he.Code != pipeline.CodePaymentRequired ||
		!strings.Contains(err.Error(), "insufficient credits: have 0.001 GFT, need ") {
		t.Fatalf("err = %v, want insufficient credits", err)
	}
}

// TestUnsignedReceiptRefused: a client that does not countersign (here: one
// that generates without paying) leaves the stages' proposals pending, and is
// refused by them until it signs.
func TestUnsignedReceiptRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, WithNodes(2))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := n.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.OpenModel(ctx, n.ModelID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := m.Info.Manifest.Config
	freeloader := func(ctx context.Context, maxLen int) (pipeline.Runner, error) {
		return pipeline.OpenRemote(ctx, c.Host(), n.ModelID, cfg.Layers, cfg.VocabSize, maxLen, c.PeerSource(m.Cov))
	}
	if _, err := pipeline.Generate(ctx, freeloader, m.Info.Tokenizer, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 10}); err != nil {
		t.Fatal(err)
	}
	// The stages proposed the final window when the session ended; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, _ := n.Volunteers[0].Ledger().Store().Pending(c.Ledger().Self())
		if len(pending) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no proposal pending for the client")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = pipeline.Generate(ctx, freeloader, m.Info.Tokenizer, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 10})
	var he *pipeline.HopError
	if !errors.As(err, &he) || he.Code != pipeline.CodePaymentRequired || !strings.Contains(err.Error(), "unsigned receipt") {
		t.Fatalf("a client with an unsigned receipt was served: %v", err)
	}
}
