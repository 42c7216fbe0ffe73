package dashboard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
	"github.com/imece/imece/pipeline"
)

// Status is what GET /api/status answers: everything the page shows. Amounts
// are GFT (milli-GFT in the signed records, divided by 1000 here), rates per
// second, times Unix milliseconds.
type Status struct {
	Time int64      `json:"time"`
	Node NodeStatus `json:"node"`
	// Peers are the nodes whose records serve a model shown, this one
	// included, by peer ID.
	Peers []Peer `json:"peers"`
	// ConnectedPeers is how many peers this node's host is connected to.
	ConnectedPeers int `json:"connected_peers"`
	// DHTPeers is the size of the node's Kademlia routing table.
	DHTPeers int             `json:"dht_peers"`
	Models   []ModelCoverage `json:"models"`
	Balance  *Balance        `json:"balance,omitempty"`
	// Receipts are the latest blocks of this node's own chain, newest first.
	Receipts []Receipt `json:"receipts"`
	// Grid is the grid signal this node advertises, absent without one.
	Grid   *Grid  `json:"grid,omitempty"`
	Tokens Tokens `json:"tokens"`
	// Errors lists what could not be read, so the page says so instead of
	// showing stale or zero values.
	Errors []string `json:"errors,omitempty"`
}

// NodeStatus is this node.
type NodeStatus struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// Serving is the model and layers this node serves, absent on a client.
	Serving   *Served `json:"serving,omitempty"`
	Sessions  int     `json:"sessions"`
	Served    int     `json:"sessions_served"`
	FreeSlots int     `json:"free_slots"`
}

// Served is a model's layers [first, last) served by a node.
type Served struct {
	Model  string `json:"model"`
	First  int    `json:"first"`
	Last   int    `json:"last"`
	Layers int    `json:"layers"`
	// Throughput is the announced rate in layer-positions per second.
	Throughput uint64 `json:"throughput,omitempty"`
}

// Peer is a node serving a model, from its signed record.
type Peer struct {
	ID     string   `json:"id"`
	Self   bool     `json:"self,omitempty"`
	Models []Served `json:"models"`
	// Tier is the hardware tier (0: not benchmarked), Multiplier its credit
	// multiplier.
	Tier       uint8   `json:"tier"`
	Multiplier float64 `json:"multiplier"`
	// Load is 0 (idle) to 1; FreeSlots the sessions it accepts now.
	Load      float64 `json:"load"`
	FreeSlots uint32  `json:"free_slots"`
	// PGrid is its grid score, 0 (unknown or dirty) to 1 (clean and idle).
	PGrid float64 `json:"p_grid"`
	// Reliability is from the audits on the chains this node holds, 0 to 1.
	Reliability float64 `json:"reliability"`
	Quarantined bool    `json:"quarantined,omitempty"`
	Connected   bool    `json:"connected"`
	// LatencyMS is this host's measured round trip to it, 0 when unmeasured.
	LatencyMS float64 `json:"latency_ms"`
}

// ModelCoverage is who serves each layer of a model.
type ModelCoverage struct {
	Model  string `json:"model"`
	Layers int    `json:"layers"`
	// Servers[i] is how many nodes serve layer i.
	Servers []int `json:"servers"`
	// Covered: every layer has a server, so a chain exists.
	Covered bool `json:"covered"`
	// Refreshed is when the DHT was last asked, 0 before the first answer.
	Refreshed int64 `json:"refreshed"`
}

// Balance is this node's credit in GFT.
type Balance struct {
	Available    float64 `json:"available"`
	Allowance    float64 `json:"allowance"`
	Earned       float64 `json:"earned"`
	Spent        float64 `json:"spent"`
	PendingEarn  float64 `json:"pending_earn"`
	PendingSpend float64 `json:"pending_spend"`
	Frozen       bool    `json:"frozen,omitempty"`
}

// Receipt is one block of this node's chain.
type Receipt struct {
	Time int64  `json:"time"`
	Seq  uint64 `json:"seq"`
	// Kind is earn, spend, hardware or audit.
	Kind string `json:"kind"`
	// Counterparty is the client (earn), the server (spend) or the audited
	// node (audit), as a peer ID.
	Counterparty string `json:"counterparty,omitempty"`
	// Amount is + for an earn, − for a spend, in GFT.
	Amount float64 `json:"amount"`
	// Detail says more: layers and tokens, a tier, a verdict.
	Detail string `json:"detail,omitempty"`
}

// Grid is the node's grid signal.
type Grid struct {
	PGrid     float64 `json:"p_grid"`
	Carbon    float64 `json:"carbon"`
	Renewable float64 `json:"renewable"`
	Load      float64 `json:"load"`
	At        int64   `json:"at"`
	Error     string  `json:"error,omitempty"`
}

// Tokens are this node's token rates: Client what it generated through the
// mesh, Stage what its stage computed for clients.
type Tokens struct {
	Client TokenRate `json:"client"`
	Stage  TokenRate `json:"stage"`
}

// TokenRate is a token count and its recent rate.
type TokenRate struct {
	Total uint64 `json:"total"`
	// PerSecond is the mean over the last 10 whole seconds.
	PerSecond float64 `json:"per_second"`
	// Series counts the tokens of each of the last 60 whole seconds, oldest
	// first.
	Series []uint64 `json:"series"`
}

// receiptsShown is how many blocks of the node's chain the status lists.
const receiptsShown = 12

// status gathers a Status now.
func (d *Dashboard) status() Status {
	n := d.n
	now := d.cfg.now()
	s := Status{Time: now.UnixMilli(), Peers: []Peer{}, Models: []ModelCoverage{}, Receipts: []Receipt{}}
	s.Node.ID = n.ID().String()
	for _, a := range n.Addrs() {
		s.Node.Addrs = append(s.Node.Addrs, a.String())
	}
	if id, r, ok := n.Serving(); ok {
		srv := n.StageServer()
		s.Node.Serving = &Served{Model: id.String(), First: r.First, Last: r.Last}
		s.Node.Sessions, s.Node.Served, s.Node.FreeSlots = srv.Sessions(), srv.Served(), srv.FreeSlots()
	}
	s.ConnectedPeers = len(n.Host().Network().Peers())
	s.DHTPeers = routingTableSize(n)

	peers := map[peer.ID]*Peer{}
	for _, w := range d.watched() {
		snap := w.Snapshot()
		mc := ModelCoverage{Model: snap.Model.String(), Layers: snap.Layers, Servers: make([]int, len(snap.Serving)), Covered: snap.Covered()}
		if !snap.Refreshed.IsZero() {
			mc.Refreshed = snap.Refreshed.UnixMilli()
		}
		for i, srv := range snap.Serving {
			mc.Servers[i] = len(srv)
		}
		s.Models = append(s.Models, mc)
		if s.Node.Serving != nil && s.Node.Serving.Model == mc.Model {
			s.Node.Serving.Layers = snap.Layers
		}
		for id, rec := range snap.Records {
			sm, ok := rec.Serving(snap.Model)
			if !ok {
				continue
			}
			p := peers[id]
			if p == nil {
				p = d.peer(id, rec)
				peers[id] = p
			}
			p.Models = append(p.Models, Served{Model: snap.Model.String(), First: int(sm.First), Last: int(sm.Last), Layers: int(sm.Layers), Throughput: sm.Throughput})
		}
	}
	for _, p := range peers {
		s.Peers = append(s.Peers, *p)
	}
	slices.SortFunc(s.Peers, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })

	l := n.Ledger()
	if b, err := l.Store().Balance(l.Self()); err != nil {
		s.Errors = append(s.Errors, fmt.Sprintf("balance: %v", err))
	} else {
		s.Balance = &Balance{
			Available: gft(b.Available()), Allowance: gft(int64(b.Allowance)), Earned: gft(int64(b.Earned)),
			Spent: gft(int64(b.Spent)), PendingEarn: gft(int64(b.PendingEarn)), PendingSpend: gft(int64(b.PendingSpend)),
			Frozen: b.Frozen,
		}
	}
	if rs, err := d.receipts(l.Self()); err != nil {
		s.Errors = append(s.Errors, fmt.Sprintf("receipts: %v", err))
	} else {
		s.Receipts = rs
	}
	if g := n.Grid(); g != nil {
		v := g.Last()
		s.Grid = &Grid{
			PGrid: float64(v.PGrid) / 1000, Carbon: float64(v.Terms.Carbon) / 1000, Renewable: float64(v.Terms.Renewable) / 1000,
			Load: float64(v.Terms.Load) / 1000, At: v.At.UnixMilli(),
		}
		if v.Err != nil {
			s.Grid.Error = v.Err.Error()
		}
	}
	s.Tokens.Client = rateOf(&d.client, now)
	s.Tokens.Stage = rateOf(&d.stage, now)
	return s
}

func rateOf(m *rateMeter, now time.Time) TokenRate {
	series, total := m.series(now)
	return TokenRate{Total: total, PerSecond: perSecond(series, 10), Series: series}
}

func gft(milli int64) float64 { return float64(milli) / 1000 }

// peer describes a record's node, with what this node's ledger and host know
// of it.
func (d *Dashboard) peer(id peer.ID, rec *dht.Record) *Peer {
	n := d.n
	p := &Peer{
		ID: id.String(), Self: id == n.ID(), Tier: rec.Tier, Multiplier: float64(rec.Multiplier) / 1000,
		Load: float64(rec.Load) / 1000, FreeSlots: rec.FreeSlots, PGrid: float64(rec.PGrid) / 1000,
		Reliability: 1, Models: []Served{},
	}
	p.Connected = p.Self || len(n.Host().Network().ConnsToPeer(id)) > 0
	if lat := n.Host().Peerstore().LatencyEWMA(id); lat > 0 {
		p.LatencyMS = float64(lat.Microseconds()) / 1000
	}
	if k, err := pipeline.PeerKey(id); err == nil {
		if t, err := n.Ledger().Trust(k); err == nil {
			p.Reliability = float64(t.Reliability) / 1000
			p.Quarantined = t.Quarantined
		}
	}
	return p
}

// receipts lists the latest blocks of the node's own chain: the other
// halves of its receipts are in its history too, but they say the same.
func (d *Dashboard) receipts(self ledger.Key) ([]Receipt, error) {
	st := d.n.Ledger().Store()
	head, err := st.Head(self)
	if errors.Is(err, store.ErrNotFound) {
		return []Receipt{}, nil // no block yet
	}
	if err != nil {
		return nil, err
	}
	from := uint64(1) // chains start at 1
	if head.Seq > receiptsShown {
		from = head.Seq - receiptsShown + 1
	}
	blocks, err := st.Range(self, from, receiptsShown)
	if err != nil {
		return nil, err
	}
	out := make([]Receipt, 0, len(blocks))
	for i := len(blocks) - 1; i >= 0; i-- {
		if r, ok := receiptOf(blocks[i]); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func receiptOf(b *ledger.Block) (Receipt, bool) {
	r := Receipt{Time: b.Time, Seq: b.Seq, Kind: b.Kind.String()}
	switch b.Kind {
	case ledger.KindEarn:
		e, err := b.Earn()
		if err != nil {
			return r, false
		}
		r.Kind, r.Counterparty, r.Amount = "earn", peerString(e.Client), gft(int64(e.Amount))
		r.Detail = fmt.Sprintf("layers [%d, %d), %d positions, %d tokens", e.First, e.Last, e.To-e.From, e.Tokens)
	case ledger.KindSpend:
		sp, err := b.Spend()
		if err != nil {
			return r, false
		}
		r.Kind, r.Counterparty, r.Amount = "spend", peerString(sp.Server), -gft(int64(sp.Amount))
		r.Detail = fmt.Sprintf("receipt #%d", sp.Seq)
	case ledger.KindHardware:
		h, err := b.Hardware()
		if err != nil {
			return r, false
		}
		r.Kind = "hardware"
		r.Detail = fmt.Sprintf("tier %d, multiplier %.3f", h.Tier, float64(h.Multiplier)/1000)
	case ledger.KindAudit:
		a, err := b.Audit()
		if err != nil {
			return r, false
		}
		r.Kind, r.Counterparty = "audit", peerString(a.Subject)
		verdict := "pass"
		if !a.Passed() {
			verdict = "FAIL"
		}
		r.Detail = fmt.Sprintf("%s, layers [%d, %d)", verdict, a.First, a.Last)
	}
	return r, true
}

// peerString is the peer ID of a ledger key (Ed25519 peer IDs embed the key),
// or the key in hex when it is not one.
func peerString(k ledger.Key) string {
	pub, err := crypto.UnmarshalEd25519PublicKey(k[:])
	if err == nil {
		if id, err := peer.IDFromPublicKey(pub); err == nil {
			return id.String()
		}
	}
	return k.String()
}

// modelList is the models to show: the served one first, then in CID order.
func modelList(served cid.Cid, known, extra []cid.Cid) []cid.Cid {
	var out []cid.Cid
	add := func(c cid.Cid) {
		if c.Defined() && !slices.ContainsFunc(out, c.Equals) {
			out = append(out, c)
		}
	}
	add(served)
	for _, c := range extra {
		add(c)
	}
	for _, c := range known {
		add(c)
	}
	return out
}
