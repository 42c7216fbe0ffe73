package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The mDNS service itself is not started in tests: it multicasts on every
// interface, and tests stay on loopback. What is ours is what happens to an
// announcement, which these tests feed in directly.

func TestLANDiscoveryConnectsToFoundPeers(t *testing.T) {
	ctx := testContext(t)
	h, other := newTestHost(t), newTestHost(t)
	d := newLANDiscovery(h, nil)
	defer d.Close()

	d.HandlePeerFound(peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}) // itself: ignored
	d.HandlePeerFound(peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()})
	waitFor(ctx, t, "connection to the announced peer", func() bool {
		return len(h.Network().ConnsToPeer(other.ID())) > 0
	})
	if len(h.Network().Peers()) != 1 {
		t.Errorf("connected to %v, want only the announced peer", h.Network().Peers())
	}
}

func TestLANDiscoveryCloseWaitsForDials(t *testing.T) {
	h := newTestHost(t)
	d := newLANDiscovery(h, nil)
	// Announced peers that never answer: Close must cancel their dials and
	// wait for them (goleak in TestMain checks nothing is left running).
	for range 2 * maxLANDials {
		gone := newTestHost(t)
		ai := peer.AddrInfo{ID: gone.ID(), Addrs: gone.Addrs()}
		gone.Close()
		d.HandlePeerFound(ai)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
