package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestParseBootstrapAddrs(t *testing.T) {
	id1, id2 := peerID(t), peerID(t)
	got, err := ParseBootstrapAddrs([]string{
		"/ip4/192.0.2.1/tcp/4001/p2p/" + id1.String(),
		"/ip4/192.0.2.2/udp/4001/quic-v1/p2p/" + id2.String(),
		"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + id1.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != id1 || got[1].ID != id2 || len(got[0].Addrs) != 2 || len(got[1].Addrs) != 1 {
		t.Fatalf("got %v, want id1 with two addresses then id2 with one", got)
	}
	if got[0].Addrs[0].String() != "/ip4/192.0.2.1/tcp/4001" {
		t.Errorf("transport part %s still names the peer", got[0].Addrs[0])
	}

	for _, bad := range []string{
		"/ip4/192.0.2.1/tcp/4001",     // no peer ID: cannot authenticate the node
		"/p2p/" + id1.String(),        // no transport: nothing to dial
		"/ip4/192.0.2.1/tcp/notaport", // not a multiaddr
		"",
	} {
		if _, err := ParseBootstrapAddrs([]string{bad}); err == nil {
			t.Errorf("ParseBootstrapAddrs(%q) accepted", bad)
		} else {
			t.Logf("error shown: %v", err)
		}
	}
}

func TestNewMeshLinkValidates(t *testing.T) {
	h := newTestHost(t)
	other := peerID(t)
	for _, tt := range []struct {
		name  string
		peers []peer.AddrInfo
		opts  []MeshLinkOption
	}{
		{"peer without address", []peer.AddrInfo{{ID: other}}, nil},
		{"peer without ID", []peer.AddrInfo{{Addrs: h.Addrs()}}, nil},
		{"zero backoff", nil, []MeshLinkOption{WithReconnectBackoff(0, time.Second)}},
		{"max below min", nil, []MeshLinkOption{WithReconnectBackoff(time.Second, time.Millisecond)}},
		{"zero dial timeout", nil, []MeshLinkOption{WithDialTimeout(0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := NewMeshLink(h, tt.peers, tt.opts...); err == nil {
				l.Close()
				t.Fatal("accepted")
			}
		})
	}
	// Its own ID in the shared bootstrap list is skipped, not an error.
	l, err := NewMeshLink(h, []peer.AddrInfo{{ID: h.ID(), Addrs: h.Addrs()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.peers) != 0 {
		t.Errorf("self kept as a bootstrap peer")
	}
	l.Close()
}

// TestMeshLinkReconnectsToRestartedBootstrap: the bootstrap node goes away and
// comes back with the same identity on the same address; the node finds it
// again by itself and calls the hook each time it joins.
func TestMeshLinkReconnectsToRestartedBootstrap(t *testing.T) {
	ctx := testContext(t)
	bootKey := newKey(t)
	boot := newTestHostOn(t, []string{loopbackTCP}, WithIdentity(bootKey))
	listen := boot.Network().ListenAddresses() // with the port the OS chose
	bootPeers := bootstrapPeers(t, boot)

	n := newTestHost(t)
	joined := make(chan struct{}, 8)
	link, err := NewMeshLink(n, bootPeers,
		WithOnReconnect(func() { joined <- struct{}{} }),
		WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
		WithDialTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()

	waitSignal(ctx, t, joined, "first join")
	if !n.ConnManager().IsProtected(boot.ID(), BootstrapProtectTag) {
		t.Error("bootstrap peer not protected from trimming")
	}

	if err := boot.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "node to notice it is alone", func() bool { return len(n.Network().Peers()) == 0 })

	strs := make([]string, len(listen))
	for i, a := range listen {
		strs[i] = a.String()
	}
	// Same identity, same port: what a restarted bootstrap node looks like.
	boot2 := newTestHostOn(t, strs, WithIdentity(bootKey))

	waitSignal(ctx, t, joined, "rejoin after the bootstrap node restarted")
	if len(n.Network().ConnsToPeer(boot2.ID())) == 0 {
		t.Fatal("hook fired but the node is not connected to the restarted bootstrap node")
	}

	link.Close()
	if n.ConnManager().IsProtected(boot2.ID(), BootstrapProtectTag) {
		t.Error("bootstrap peer still protected after Close")
	}
}

// TestMeshLinkBacksOffWhileIsolated drives the reconnect loop with a fake
// clock and a dialer that fails on demand: after the node loses its only
// peer, attempts come at once, then after min, 2·min, … capped at max, each
// shortened by the jitter; success stops the attempts and calls the hook; the
// next loss starts again from min.
func TestMeshLinkBacksOffWhileIsolated(t *testing.T) {
	ctx := testContext(t)
	bootKey := newKey(t)
	boot := newTestHostOn(t, []string{loopbackTCP}, WithIdentity(bootKey))
	n := newTestHost(t)
	connect(ctx, t, n, boot)

	clk := &fakeClock{timers: make(chan fakeTimer, 64)}
	dials := make(chan peer.ID, 64)
	reachable := make(chan host.Host, 1) // a host to really dial, or empty: fail
	connect := func(ctx context.Context, ai peer.AddrInfo) error {
		dials <- ai.ID
		select {
		case h := <-reachable:
			return n.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		default:
			return errors.New("unreachable (fake dialer)")
		}
	}
	joined := make(chan struct{}, 8)
	link, err := NewMeshLink(n, bootstrapPeers(t, boot),
		WithOnReconnect(func() { joined <- struct{}{} }),
		WithReconnectBackoff(time.Second, 8*time.Second),
		func(c *meshLinkConfig) error {
			c.clock, c.connect, c.rand = clk, connect, func() float64 { return 0.5 }
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()

	// Already connected: nothing to dial, no hook, no timer.
	select {
	case id := <-dials:
		t.Fatalf("dialled %s while connected", id)
	case <-joined:
		t.Fatal("hook called without a reconnection")
	default:
	}

	boot.Close()
	// jitter 0.2 × rand 0.5 shortens every wait by 10%.
	for i, want := range []time.Duration{900, 1800, 3600, 7200, 7200, 7200} {
		waitSignal(ctx, t, dials, "dial attempt")
		tm := waitTimer(ctx, t, clk)
		if tm.d != want*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v", i, tm.d, want*time.Millisecond)
		}
		select {
		case <-dials:
			t.Fatal("dialled again before the backoff timer fired")
		default:
		}
		if i < 5 {
			tm.fire <- time.Time{}
		} else {
			// The bootstrap node is back (same identity); the next attempt succeeds.
			boot2 := newTestHostOn(t, []string{loopbackTCP}, WithIdentity(bootKey))
			reachable <- boot2
			tm.fire <- time.Time{}
		}
	}
	waitSignal(ctx, t, dials, "successful dial")
	waitSignal(ctx, t, joined, "hook after reconnecting")
	select {
	case tm := <-clk.timers:
		t.Fatalf("retry of %v scheduled after a successful reconnection", tm.d)
	default:
	}

	// The next loss starts from the shortest wait again.
	n.Network().ClosePeer(boot.ID())
	waitSignal(ctx, t, dials, "dial after the second loss")
	if tm := waitTimer(ctx, t, clk); tm.d != 900*time.Millisecond {
		t.Fatalf("first wait after a new loss %v, want 900ms (backoff reset)", tm.d)
	}
}

// TestMeshLinkRedialsDroppedBootstrapPeer: with two bootstrap peers, losing
// one is not isolation, but the link dials it back at once, and calls the hook
// then: the bootstrap node may have restarted with an empty DHT.
func TestMeshLinkRedialsDroppedBootstrapPeer(t *testing.T) {
	ctx := testContext(t)
	b1, b2 := newTestHost(t), newTestHost(t)
	n := newTestHost(t)
	joined := make(chan struct{}, 8)
	link, err := NewMeshLink(n, append(bootstrapPeers(t, b1), bootstrapPeers(t, b2)...),
		WithOnReconnect(func() { joined <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	waitSignal(ctx, t, joined, "first join")
	waitFor(ctx, t, "both bootstrap peers connected", func() bool { return len(n.Network().Peers()) == 2 })

	if err := n.Network().ClosePeer(b1.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "dropped bootstrap peer redialled", func() bool { return len(n.Network().ConnsToPeer(b1.ID())) > 0 })
	waitSignal(ctx, t, joined, "hook after the bootstrap peer came back")
}

// TestMeshLinkWithoutBootstrapPeers: the first node of a network dials no one
// but still re-announces when a peer reaches it.
func TestMeshLinkWithoutBootstrapPeers(t *testing.T) {
	ctx := testContext(t)
	first := newTestHost(t)
	joined := make(chan struct{}, 8)
	link, err := NewMeshLink(first, nil, WithOnReconnect(func() { joined <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	other := newTestHost(t)
	connect(ctx, t, other, first)
	waitSignal(ctx, t, joined, "hook on an inbound connection")
}

type fakeClock struct{ timers chan fakeTimer }

type fakeTimer struct {
	d    time.Duration
	fire chan time.Time
}

func (c *fakeClock) newTimer(d time.Duration) (<-chan time.Time, func() bool) {
	tm := fakeTimer{d: d, fire: make(chan time.Time, 1)}
	c.timers <- tm
	return tm.fire, func() bool { return true }
}

func waitTimer(ctx context.Context, t *testing.T, c *fakeClock) fakeTimer {
	t.Helper()
	select {
	case tm := <-c.timers:
		return tm
	case <-ctx.Done():
		t.Fatal("timed out waiting for a backoff timer")
		return fakeTimer{}
	}
}

func waitSignal[T any](ctx context.Context, t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case <-c:
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func bootstrapPeers(t *testing.T, h host.Host) []peer.AddrInfo {
	t.Helper()
	var strs []string
	for _, a := range FullAddrs(h) {
		strs = append(strs, a.String())
	}
	peers, err := ParseBootstrapAddrs(strs)
	if err != nil {
		t.Fatal(err)
	}
	return peers
}

func peerID(t *testing.T) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
