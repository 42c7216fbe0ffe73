package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/pipeline"
)

// WatchFactor is how many times more often a client audits the hops of a node
// under watch than its base rate says: a node whose hardware claim is in
// quarantine (ledger's doc: "extra challenges" while it earns at its old
// multiplier), or whose reliability is below 1.0 because an audit failed.
const WatchFactor = 4

// watchRate is the audit rate of each peer as this node's chains see it: base,
// or WatchFactor·base (at most 1) for a peer under watch. A peer the ledger
// cannot place (no key, no store) gets the base rate.
func watchRate(l *Ledger, base float64) func(peer.ID) float64 {
	return func(p peer.ID) float64 {
		k, err := pipeline.PeerKey(p)
		if err != nil {
			return base
		}
		t, err := l.Trust(k)
		if err != nil || (!t.Quarantined && t.Reliability >= 1000) {
			return base
		}
		return min(base*WatchFactor, 1)
	}
}
