package node

import (
	"github.com/libp2p/go-libp2p/core/network"
)

// Activations never travel through a relay: a relay is a volunteer's
// bandwidth lent for signalling, capped by circuit v2 at a couple of minutes
// and 128 KiB per connection, and an extra hop for every token. Two rules keep
// pipeline traffic direct:
//
// Outbound, the pipeline opens its streams with a context that does NOT carry
// network.WithAllowLimitedConn. In go-libp2p v0.48.0 a relayed connection is
// "limited" (ConnStats.Limited), and swarm.Swarm.NewStream
// (p2p/net/swarm/swarm.go) then waits for a direct connection (hole punching
// or connection reversal) up to the dial timeout and fails rather than use the
// relayed one; swarm.Conn.NewStream (p2p/net/swarm/swarm_conn.go) refuses with
// network.ErrLimitedConn outright. TestRelayedConnCarriesNoStream checks both.
//
// Inbound, the pipeline registers its handler through DirectOnly, because the
// opener, not the receiver, decides whether a limited connection may be used.

// DirectOnly wraps a stream handler so that streams arriving over a limited
// (relayed) connection are reset before next sees them. Register pipeline
// handlers with it:
//
//	h.SetStreamHandler(pipeline.StageProtocol, node.DirectOnly(server.Handle))
func DirectOnly(next network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if !IsDirect(s.Conn()) {
			_ = s.Reset()
			return
		}
		next(s)
	}
}

// IsDirect reports whether c is a direct connection, not a limited (relayed)
// one, i.e. whether it may carry activations.
func IsDirect(c network.Conn) bool {
	return !c.Stat().Limited
}
