package node

import (
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/imece/imece/pipeline"
)

// Observe attaches o to the node's work until the returned function is
// called: the forwards its stage server computes, the tokens its clients
// receive, its receipts and its audits. Metrics and the dashboard attach this
// way after the node started, so the node needs no option for them and pays
// nothing when nobody watches.
func (n *Node) Observe(o *pipeline.Observer) (remove func()) { return n.obs.Add(o) }

// KnownModels lists the models whose manifests this node holds (those it
// serves, used as a client, or priced receipts of), in CID order: the models
// a dashboard can show the coverage of.
func (n *Node) KnownModels() []cid.Cid {
	b := n.ledger.costs
	b.mu.RLock()
	out := make([]cid.Cid, 0, len(b.costs))
	for k := range b.costs {
		if c, err := cid.Cast([]byte(k)); err == nil {
			out = append(out, c)
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(a, b cid.Cid) int {
		switch {
		case a.KeyString() < b.KeyString():
			return -1
		case a.KeyString() > b.KeyString():
			return 1
		}
		return 0
	})
	return out
}
