package node

import (
	"bufio"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

const guardedProtocol = protocol.ID("/imece/test-guarded/1.0.0")

// relayedPair returns two NAT-traversal hosts connected to each other only
// through a circuit v2 relay, all on loopback: a connects to b's relay
// address and never learns a direct path it would dial on its own (hole
// punching waits for a public address, which loopback hosts never get).
func relayedPair(ctx context.Context, t *testing.T) (a, b host.Host) {
	t.Helper()
	r := newTestHostOn(t, []string{loopbackTCP})
	relay, err := relayv2.New(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })

	natHost := func() host.Host {
		return newTestHostOn(t, []string{loopbackTCP}, WithNATTraversal(true))
	}
	a, b = natHost(), natHost()
	rInfo := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}
	if err := b.Connect(ctx, rInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b, rInfo); err != nil {
		t.Fatalf("reserve a slot on the relay: %v", err)
	}
	circuit := ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit")
	var viaRelay []ma.Multiaddr
	for _, addr := range r.Addrs() {
		viaRelay = append(viaRelay, addr.Encapsulate(circuit))
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: viaRelay}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || IsDirect(conns[0]) {
		t.Fatalf("want exactly one limited connection a → b, got %d (direct: %v)", len(conns), len(conns) == 1 && IsDirect(conns[0]))
	}
	return a, b
}

// TestRelayedConnCarriesNoStream pins the go-libp2p v0.48.0 behaviour that
// keeps activations off relays (direct.go): without
// network.WithAllowLimitedConn no stream opens over a relayed connection,
// and DirectOnly refuses one even when the opener allows it.
func TestRelayedConnCarriesNoStream(t *testing.T) {
	ctx := testContext(t)
	a, b := relayedPair(ctx, t)
	b.SetStreamHandler(echoProtocol, echo)
	b.SetStreamHandler(guardedProtocol, DirectOnly(echo))

	// Host level: waits for a direct connection that never comes, then fails.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := a.NewStream(short, b.ID(), echoProtocol)
	if err == nil {
		s.Reset()
		t.Fatal("host opened a stream over a relayed connection without WithAllowLimitedConn")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, network.ErrLimitedConn) {
		t.Fatalf("host.NewStream over a relayed connection: %v, want a wait for a direct connection that times out", err)
	}
	// Connection level: refuses at once.
	if _, err := a.Network().ConnsToPeer(b.ID())[0].NewStream(ctx); !errors.Is(err, network.ErrLimitedConn) {
		t.Fatalf("conn.NewStream on a relayed connection: %v, want ErrLimitedConn", err)
	}

	// The relay itself works: a stream that opts in does flow through it.
	allowed := network.WithAllowLimitedConn(ctx, "test")
	roundTrip(allowed, t, a, b)

	// DirectOnly resets a relayed stream even when the opener opted in.
	s, err = a.NewStream(allowed, b.ID(), guardedProtocol)
	if err != nil {
		t.Fatalf("open guarded stream: %v", err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s, "activations\n"); err == nil {
		if line, err := bufio.NewReader(s).ReadString('\n'); err == nil {
			t.Fatalf("DirectOnly handler echoed %q over a relayed connection", line)
		}
	}
}

// TestDirectOnlyServesDirectStreams: the guard lets direct streams through.
func TestDirectOnlyServesDirectStreams(t *testing.T) {
	ctx := testContext(t)
	a, b := newTestHost(t), newTestHost(t)
	b.SetStreamHandler(echoProtocol, DirectOnly(echo))
	connect(ctx, t, a, b)
	roundTrip(ctx, t, a, b)
}
