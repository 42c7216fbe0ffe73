package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
)

// TestOtherNetworkRefused: a node whose genesis differs from its bootstrap
// node's is refused with a message naming both networks, and cannot reconnect.
func TestOtherNetworkRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(g *ledger.Genesis, boot ...string) (*Node, error) {
		return Start(ctx, WithDataDir(t.TempDir()), WithListen("/ip4/127.0.0.1/tcp/0"), WithNAT(false),
			WithGenesis(g), WithBootstrap(boot...), WithNodeLogger(slog.New(slog.DiscardHandler)))
	}
	genesis := func(network string, allowance uint64) *ledger.Genesis {
		g := ledger.DefaultGenesis()
		g.Network, g.StarterAllowance = network, allowance
		return g
	}
	alpha := genesis("alpha", 1000)
	a, err := start(alpha)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	boot := a.Addrs()[0].String()

	for _, other := range []*ledger.Genesis{genesis("beta", 1000), genesis("alpha", 2000)} {
		b, err := start(other, boot)
		if err == nil {
			b.Close()
			t.Fatalf("a node of %v joined %v", other.Network, alpha.Network)
		}
		if !errors.Is(err, ErrOtherNetwork) || !strings.Contains(err.Error(), `"alpha"`) {
			t.Fatalf("err = %v, want one naming the other network", err)
		}
	}
	same, err := start(alpha, boot)
	if err != nil {
		t.Fatalf("a node of the same network: %v", err)
	}
	same.Close()
}
