package node

import (
	"cmp"
	"slices"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// FullAddrs returns the node's addresses with /p2p/<peer ID> appended: the
// form another node passes to --bootstrap, and what `imece node` prints at
// start. It combines what the host advertises (which, with NAT traversal on,
// may include observed public addresses) with every interface address it
// listens on, so loopback and private addresses are there when the node
// listens on them: a LAN or single-machine testnet needs exactly those.
// Public addresses come first, loopback last; relay addresses are left out
// because activations never use them.
func FullAddrs(h host.Host) []ma.Multiaddr {
	addrs := slices.Clone(h.Addrs())
	if iface, err := h.Network().InterfaceListenAddresses(); err == nil {
		addrs = append(addrs, iface...)
	}
	addrs = slices.DeleteFunc(addrs, isRelayAddr)
	slices.SortStableFunc(addrs, func(a, b ma.Multiaddr) int {
		return cmp.Or(cmp.Compare(addrRank(a), addrRank(b)), cmp.Compare(a.String(), b.String()))
	})
	addrs = slices.CompactFunc(addrs, ma.Multiaddr.Equal)
	self := ma.StringCast("/p2p/" + h.ID().String())
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if _, id := peer.SplitAddr(a); id != "" {
			a, _ = peer.SplitAddr(a)
		}
		out = append(out, a.Encapsulate(self))
	}
	return out
}

func isRelayAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// addrRank orders addresses by how widely they are reachable.
func addrRank(a ma.Multiaddr) int {
	switch {
	case manet.IsIPLoopback(a):
		return 2
	case manet.IsPrivateAddr(a):
		return 1
	default:
		return 0
	}
}
