package metrics

import (
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imece/imece/node"
)

// The gauges read from the node at scrape time.
var (
	descBalance = prometheus.NewDesc(Namespace+"_balance_gft",
		"This node's credits in GFT from its ledger, by kind: available (allowance + earned - spent, 0 when frozen), allowance, earned, spent, pending_earn, pending_spend.",
		[]string{"kind"}, nil)
	descFrozen = prometheus.NewDesc(Namespace+"_frozen",
		"1 when this node's credits are frozen (its chain forked), else 0.", nil, nil)
	descSessions = prometheus.NewDesc(Namespace+"_stage_sessions",
		"Sessions open on this node's stage now.", nil, nil)
	descSessionsTotal = prometheus.NewDesc(Namespace+"_stage_sessions_total",
		"Sessions this node's stage admitted since it started.", nil, nil)
	descFreeSlots = prometheus.NewDesc(Namespace+"_stage_free_slots",
		"More sessions this node's stage accepts now.", nil, nil)
	descServing = prometheus.NewDesc(Namespace+"_stage_layers",
		"Layers this node serves, labelled with the model and the range [first, last).", []string{"model", "first", "last"}, nil)
	descDHTPeers = prometheus.NewDesc(Namespace+"_dht_peers",
		"Peers in this node's Kademlia routing table.", nil, nil)
	descConnected = prometheus.NewDesc(Namespace+"_connected_peers",
		"Peers this node's host is connected to now.", nil, nil)
	descPGrid = prometheus.NewDesc(Namespace+"_grid_score",
		"P_grid this node advertises, 0 (dirty, busy) to 1 (clean, idle); absent when it advertises none.", nil, nil)
)

// nodeCollector reads the node's state when scraped, so the gauges are never
// stale and nothing runs between scrapes.
type nodeCollector struct {
	n   *node.Node
	log *slog.Logger
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBalance, descFrozen, descSessions, descSessionsTotal,
		descFreeSlots, descServing, descDHTPeers, descConnected, descPGrid} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if b, err := n.Ledger().Store().Balance(n.Ledger().Self()); err != nil {
		c.log.Warn("metrics: balance not read", "err", err)
		ch <- prometheus.NewInvalidMetric(descBalance, err)
	} else {
		gft := func(milli int64) float64 { return float64(milli) / 1000 }
		gauge(descBalance, gft(b.Available()), "available")
		gauge(descBalance, gft(int64(b.Allowance)), "allowance")
		gauge(descBalance, gft(int64(b.Earned)), "earned")
		gauge(descBalance, gft(int64(b.Spent)), "spent")
		gauge(descBalance, gft(int64(b.PendingEarn)), "pending_earn")
		gauge(descBalance, gft(int64(b.PendingSpend)), "pending_spend")
		frozen := 0.0
		if b.Frozen {
			frozen = 1
		}
		gauge(descFrozen, frozen)
	}
	if srv := n.StageServer(); srv != nil {
		gauge(descSessions, float64(srv.Sessions()))
		ch <- prometheus.MustNewConstMetric(descSessionsTotal, prometheus.CounterValue, float64(srv.Served()))
		gauge(descFreeSlots, float64(srv.FreeSlots()))
		if id, r, ok := n.Serving(); ok {
			gauge(descServing, float64(r.Last-r.First), id.String(), strconv.Itoa(r.First), strconv.Itoa(r.Last))
		}
	}
	if size, ok := routingTableSize(n); ok {
		gauge(descDHTPeers, float64(size))
	}
	gauge(descConnected, float64(len(n.Host().Network().Peers())))
	if g := n.Grid(); g != nil {
		gauge(descPGrid, float64(g.Last().PGrid)/1000)
	}
}
