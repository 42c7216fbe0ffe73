package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/replicate"
	"github.com/imece/imece/node/grid"
	"github.com/imece/imece/node/hardware"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// Layers says which layers a volunteer serves: a fixed range, or Auto to take
// the range the network covers least (DESIGN.md §3) that fits MaxLayers.
type Layers struct {
	First, Last int
	Auto        bool
	// MaxLayers bounds an automatic range (what fits the node's memory); 0 means
	// decide from the memory available.
	MaxLayers int
}

type nodeConfig struct {
	dataDir   string
	listen    []string
	bootstrap []string
	mdns      bool
	nat       bool
	log       *slog.Logger

	model   *model.Model
	backend kernels.Backend
	layers  Layers

	genesis    *ledger.Genesis
	dhtMode    dht.Mode
	dhtOpts    []dht.Option
	serverOpts []pipeline.ServerOption
	hostOpts   []HostOption

	claim       *hardware.Claim
	auditRate   float64
	canaryEvery time.Duration
	gridSrc     grid.Source
	gridOpts    []grid.RefresherOption
}

// Option configures Start.
type Option func(*nodeConfig) error

// WithDataDir is where the node keeps its identity (and, later, its ledger).
func WithDataDir(dir string) Option {
	return func(c *nodeConfig) error { c.dataDir = dir; return nil }
}

// WithListen sets the listen multiaddrs.
func WithListen(addrs ...string) Option {
	return func(c *nodeConfig) error { c.listen = append(c.listen, addrs...); return nil }
}

// WithBootstrap adds bootstrap multiaddrs (with /p2p/<id>).
func WithBootstrap(addrs ...string) Option {
	return func(c *nodeConfig) error { c.bootstrap = append(c.bootstrap, addrs...); return nil }
}

// WithLAN switches mDNS discovery of peers on the local network on or off.
func WithLAN(on bool) Option { return func(c *nodeConfig) error { c.mdns = on; return nil } }

// WithNAT switches AutoNAT, hole punching and the relay client on or off; off for
// loopback networks, where they only add traffic.
func WithNAT(on bool) Option { return func(c *nodeConfig) error { c.nat = on; return nil } }

// WithNodeLogger sets the logger of the node and its parts.
func WithNodeLogger(l *slog.Logger) Option {
	return func(c *nodeConfig) error { c.log = l; return nil }
}

// WithServe makes the node a volunteer serving layers of m, computed on be. The
// model and backend stay the caller's to close, after the node.
func WithServe(m *model.Model, be kernels.Backend, layers Layers) Option {
	return func(c *nodeConfig) error {
		if m == nil || be == nil {
			return errors.New("serve needs a model and a backend")
		}
		c.model, c.backend, c.layers = m, be, layers
		return nil
	}
}

// WithClientMode makes the node a light client: a DHT client that serves nothing
// and stores no records for others.
func WithClientMode() Option {
	return func(c *nodeConfig) error { c.dhtMode = dht.ModeClient; return nil }
}

// WithGenesis sets the network the node belongs to (default: the local network
// of ledger.DefaultGenesis): its parameters, and the hash peers must share.
func WithGenesis(g *ledger.Genesis) Option {
	return func(c *nodeConfig) error {
		if err := g.Validate(); err != nil {
			return err
		}
		c.genesis = g
		return nil
	}
}

// WithDHTOptions passes options to discovery (timings in tests).
func WithDHTOptions(opts ...dht.Option) Option {
	return func(c *nodeConfig) error { c.dhtOpts = append(c.dhtOpts, opts...); return nil }
}

// WithServerOptions passes options to the stage server.
func WithServerOptions(opts ...pipeline.ServerOption) Option {
	return func(c *nodeConfig) error { c.serverOpts = append(c.serverOpts, opts...); return nil }
}

// WithHostOptions passes options to NewHost.
func WithHostOptions(opts ...HostOption) Option {
	return func(c *nodeConfig) error { c.hostOpts = append(c.hostOpts, opts...); return nil }
}

// WithHardware sets the node's hardware claim (imece bench, hardware.Load): the
// tier and multiplier its record advertises. Without one a volunteer advertises
// the baseline multiplier it has always had, 1.0, and tier 0 (not benchmarked).
func WithHardware(c hardware.Claim) Option {
	return func(cfg *nodeConfig) error {
		if c.Multiplier == 0 {
			return errors.New("a hardware claim needs a multiplier")
		}
		cfg.claim = &c
		return nil
	}
}

// WithAudits makes the node, as a client, audit a share rate (0 to 1) of the
// hops that serve it: after a session, other replicas of a sampled hop's layers
// re-execute it on the inputs it received, and the verdict is signed into this
// node's ledger (a KindAudit block), from which every node derives the audited
// node's reliability factor. 0, the default, audits nothing.
func WithAudits(rate float64) Option {
	return func(c *nodeConfig) error {
		if !(rate >= 0 && rate <= 1) {
			return fmt.Errorf("audit rate %v: want 0 to 1", rate)
		}
		c.auditRate = rate
		return nil
	}
}

// WithGrid makes a volunteer advertise P_grid from src (node/grid: a file, an
// HTTP carbon-intensity API, a simulated zone), weighted by the network's
// genesis and refreshed in the background with the node's load, so that
// clients route toward idle, clean grids. Without it the record's P_grid is 0:
// unknown, which the planner treats as the dirtiest grid.
func WithGrid(src grid.Source, opts ...grid.RefresherOption) Option {
	return func(c *nodeConfig) error {
		if src == nil {
			return errors.New("a grid signal needs a source")
		}
		c.gridSrc, c.gridOpts = src, opts
		return nil
	}
}

// Node is a running peer: a libp2p host, discovery, and, for a volunteer, the
// stage server for its layers and the model protocol for light clients.
type Node struct {
	cfg       nodeConfig
	log       *slog.Logger
	closeOnce sync.Once
	closeErr  error

	h      host.Host
	ledger *Ledger
	repl   *replicate.Replicator
	gate   *gate
	hello  *greeter
	disc   *dht.Discovery
	link   *MeshLink
	lan    *LANDiscovery

	srv      *pipeline.StageServer
	auditor  *pipeline.Auditor
	grid     *grid.Refresher
	stopInfo func()
	info     pipeline.ModelSource // what the node serves of its own model, for itself as a client too
	canaries *canarist
	modelID  cid.Cid
	served   dht.ServedModel
	layerIDs map[cid.Cid][]cid.Cid
	obs      pipeline.Observers // see observe.go
}

// Start brings a node up: identity, host, bootstrap, DHT; and for a volunteer,
// chooses its layers, starts serving them and announces them. ctx bounds start-up.
func Start(ctx context.Context, opts ...Option) (_ *Node, err error) {
	cfg := nodeConfig{mdns: false, nat: true, log: slog.Default(), dhtMode: dht.ModeServer, genesis: ledger.DefaultGenesis()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.dataDir == "" {
		return nil, errors.New("a node needs a data directory for its identity")
	}
	n := &Node{cfg: cfg, log: cfg.log}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	key, err := LoadOrCreateIdentity(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	n.gate = newGate()
	hopts := append([]HostOption{WithIdentity(key), WithLogger(cfg.log), WithNATTraversal(cfg.nat),
		WithLibp2pOptions(libp2p.ConnectionGater(n.gate))}, cfg.hostOpts...)
	if len(cfg.listen) > 0 {
		hopts = append(hopts, WithListenAddrs(cfg.listen...))
	}
	if n.h, err = NewHost(ctx, hopts...); err != nil {
		return nil, err
	}
	network := Network{ID: cfg.genesis.Network, Genesis: cfg.genesis.Hash()}
	n.hello = startGreeter(n.h, network, n.gate, cfg.log)
	if n.ledger, err = openLedger(cfg.dataDir, cfg.genesis, key, cfg.log); err != nil {
		return nil, err
	}
	boot, err := ParseBootstrapAddrs(cfg.bootstrap)
	if err != nil {
		return nil, err
	}
	if err := n.checkBootstrap(ctx, boot); err != nil {
		return nil, err
	}
	dopts := append([]dht.Option{dht.WithMode(cfg.dhtMode), dht.WithBootstrapPeers(boot...), dht.WithLogger(cfg.log)}, cfg.dhtOpts...)
	if n.disc, err = dht.New(n.h, dopts...); err != nil {
		return nil, err
	}
	if n.repl, err = n.startReplication(cfg.genesis); err != nil {
		return nil, err
	}
	if cfg.claim != nil {
		// On the chain every node checks credits against; a new device or a
		// tier jump starts a quarantine there.
		if err := n.ledger.SetHardware(*cfg.claim); err != nil {
			return nil, fmt.Errorf("record the hardware claim: %w", err)
		}
	}
	if cfg.auditRate > 0 {
		sink := func(r verify.Result) {
			n.obs.Audited(r)
			if err := n.ledger.RecordAudit(r); err != nil {
				n.log.Warn("audit not recorded", "subject", ledger.Key(r.Subject), "verdict", r.Verdict, "err", err)
			}
		}
		if n.auditor, err = pipeline.NewAuditor(n.h, pipeline.WithAuditRate(cfg.auditRate),
			pipeline.WithAuditRateFor(watchRate(n.ledger, cfg.auditRate)),
			pipeline.WithAuditSink(sink), pipeline.WithAuditorLogger(cfg.log)); err != nil {
			return nil, err
		}
	}
	if n.link, err = NewMeshLink(n.h, boot, WithMeshLinkLogger(cfg.log), WithOnReconnect(n.reconnected)); err != nil {
		return nil, err
	}
	if cfg.mdns {
		if n.lan, err = StartLANDiscovery(n.h, cfg.log); err != nil {
			return nil, err
		}
	}
	if err := n.disc.Bootstrap(ctx); err != nil {
		return nil, err
	}
	if cfg.model != nil {
		if err := n.serve(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.canaryEvery > 0 {
		if n.canaries, err = n.startCanaries(cfg.canaryEvery); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// startReplication makes the node a keeper of every chain: blocks it makes or
// receives are gossiped, blocks others make arrive, and whatever it missed is
// pulled from peers.
func (n *Node) startReplication(g *ledger.Genesis) (*replicate.Replicator, error) {
	ps := n.disc.PubSub()
	if ps == nil {
		return nil, errors.New("ledger replication needs gossip")
	}
	h := g.Hash()
	network := fmt.Sprintf("%s/%x", g.Network, h[:8])
	l := n.ledger
	repl, err := replicate.New(n.h, l.st, ps, network,
		replicate.WithLogger(n.log),
		replicate.WithOnBlock(func(b *ledger.Block, _ replicate.Source) {
			l.wakeOrphans()
			n.learnModelOf(b)
		}))
	if err != nil {
		return nil, err
	}
	l.publish = func(b *ledger.Block) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := repl.Publish(ctx, b); err != nil {
			n.log.Debug("block not gossiped", "seq", b.Seq, "err", err)
		}
	}
	l.fraud = func(p *ledger.FraudProof) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := repl.PublishFraudProof(ctx, p); err != nil {
			n.log.Debug("fraud proof not gossiped", "owner", p.Owner(), "err", err)
		}
	}
	l.fetch = func(ctx context.Context, p peer.ID, _ ledger.Key) error { return repl.SyncWith(ctx, p) }
	return repl, nil
}

// learnModelOf fetches, once, the manifest of a model a receipt names that this
// node does not know, from the receipt's server (which serves it): a validator
// prices every receipt itself, and cannot without the model's shapes.
func (n *Node) learnModelOf(b *ledger.Block) {
	if b.Kind != ledger.KindEarn {
		return
	}
	e, err := b.Earn()
	if err != nil {
		return
	}
	if _, known := n.ledger.costs.lookup(e.Model); known {
		return
	}
	id, err := e.ModelCID()
	if err != nil {
		return
	}
	if !n.ledger.startLearning(id) {
		return
	}
	server, err := peerOf(b.Owner)
	if err != nil {
		return
	}
	n.ledger.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stop := context.AfterFunc(n.ledger.doneCtx, cancel)
		defer stop()
		info, err := pipeline.FetchModelInfo(ctx, n.h, server, id)
		if err == nil {
			err = n.ledger.Learn(info.Manifest)
		}
		if err != nil {
			n.ledger.forget(id)
			n.log.Debug("model of a receipt not learnt", "model", id, "server", server, "err", err)
		}
	})
}

// checkBootstrap greets the bootstrap peers first, so that joining a network of
// another genesis fails at once with a message saying so, instead of a node that
// silently finds nobody.
func (n *Node) checkBootstrap(ctx context.Context, boot []peer.AddrInfo) error {
	if len(boot) == 0 {
		return nil
	}
	var errs []error
	for _, ai := range boot {
		cctx, cancel := context.WithTimeout(ctx, helloTimeout)
		err := n.h.Connect(cctx, ai)
		if err == nil {
			err = n.hello.hello(cctx, ai.ID)
		}
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if errors.Is(err, ErrOtherNetwork) {
			return err
		}
	}
	return nil // unreachable bootstrap peers are MeshLink's to retry
}

// serve picks the layers, starts the stage server and announces.
func (n *Node) serve(ctx context.Context) error {
	m := n.cfg.model
	id, err := m.CID()
	if err != nil {
		return fmt.Errorf("model CID: %w", err)
	}
	n.modelID = id
	first, last, err := n.chooseLayers(ctx, id)
	if err != nil {
		return err
	}
	mf, err := m.Manifest()
	if err != nil {
		return err
	}
	if err := n.ledger.Learn(mf); err != nil {
		return fmt.Errorf("price model: %w", err)
	}
	sopts := append([]pipeline.ServerOption{pipeline.WithServerLogger(n.log), pipeline.WithStreamGuard(DirectOnly),
		pipeline.WithBilling(n.ledger), pipeline.WithObservers(&n.obs)}, n.cfg.serverOpts...)
	if n.srv, err = pipeline.NewStageServer(n.h, m, id, n.cfg.backend, first, last, sopts...); err != nil {
		return err
	}
	rate, err := MeasureThroughput(m, n.cfg.backend, first, last)
	if err != nil {
		return fmt.Errorf("measure throughput: %w", err)
	}
	mfBytes := mf.Encode()
	tok, err := model.TokenizerBlob(m.Meta, m.TokenizerJSON, m.TokenizerConfigJSON)
	if err != nil {
		return err
	}
	n.info = func(c cid.Cid) ([]byte, []byte, bool) {
		if !c.Equals(id) {
			return nil, nil, false
		}
		return mfBytes, tok, true
	}
	n.stopInfo = pipeline.ServeModelInfo(n.h, n.info, n.log)
	n.srv.Start()
	var layerIDs []cid.Cid
	for i := first; i < last; i++ {
		c, err := m.LayerCID(i)
		if err != nil {
			return err
		}
		layerIDs = append(layerIDs, c)
	}
	n.layerIDs = map[cid.Cid][]cid.Cid{id: layerIDs}
	n.served = dht.ServedModel{
		Model: id, Layers: uint32(m.Config.Layers), First: uint32(first), Last: uint32(last),
		Throughput: rate, Activations: dht.ActivationsF32 | dht.ActivationsF16,
	}
	n.log.Info("serving", "model", id, "layers", pipeline.LayerRange{First: first, Last: last}, "layer_positions_per_s", rate)
	if n.cfg.gridSrc != nil {
		if err := n.startGrid(ctx); err != nil {
			return err
		}
	}
	return n.announce(ctx)
}

// startGrid starts the refresher of the node's P_grid and load; its first value
// is in the first announcement, later ones update the record.
func (n *Node) startGrid(ctx context.Context) error {
	sig, err := grid.NewSignal(n.cfg.gridSrc, n.cfg.genesis.Grid)
	if err != nil {
		return err
	}
	srv := n.srv
	load := func() uint16 { return grid.LoadPermille(srv.Sessions(), srv.FreeSlots()) }
	opts := append([]grid.RefresherOption{grid.WithRefreshLogger(n.log)}, n.cfg.gridOpts...)
	n.grid, err = grid.NewRefresher(ctx, sig, load, n.publishGrid, opts...)
	if err != nil {
		return fmt.Errorf("grid signal: %w", err)
	}
	v := n.grid.Last()
	n.log.Info("grid signal", "p_grid", float64(v.PGrid)/1000, "carbon_permille", v.Terms.Carbon, "renewable_permille", v.Terms.Renewable)
	return nil
}

// publishGrid puts a new grid value into the node's record.
func (n *Node) publishGrid(v grid.Value) {
	err := n.disc.UpdateRecord(func(r *dht.Record) {
		r.PGrid, r.Load, r.FreeSlots = v.PGrid, v.Terms.Load, uint32(n.srv.FreeSlots())
	})
	switch {
	case err == nil:
		n.log.Debug("grid signal changed", "p_grid", float64(v.PGrid)/1000, "load_permille", v.Terms.Load)
	case errors.Is(err, dht.ErrClosed), errors.Is(err, dht.ErrNotAnnouncing):
	default:
		n.log.Warn("grid signal not advertised", "err", err)
	}
}

// Grid is the node's grid signal, nil when it advertises none.
func (n *Node) Grid() *grid.Refresher { return n.grid }

func (n *Node) record() dht.Record {
	r := dht.Record{
		Models:     []dht.ServedModel{n.served},
		Multiplier: 1000,
		FreeSlots:  uint32(n.srv.FreeSlots()),
	}
	if c := n.cfg.claim; c != nil {
		r.Tier, r.Multiplier = c.Tier, c.Multiplier
	}
	if n.grid != nil {
		v := n.grid.Last()
		r.PGrid, r.Load = v.PGrid, v.Terms.Load
	}
	return r
}

func (n *Node) announce(ctx context.Context) error {
	err := n.disc.Announce(ctx, n.record(), n.layerIDs)
	if errors.Is(err, dht.ErrAnnounceIncomplete) {
		// The first node of a network has nobody to tell yet; the announcement
		// stands and is repeated.
		n.log.Debug("announcement incomplete", "err", err)
		return nil
	}
	return err
}

// reconnected re-announces after the node regained peers, so a network that lost
// it (bootstrap restarted, network drop) finds it again at once.
func (n *Node) reconnected() {
	if n.srv == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.announce(ctx); err != nil && !errors.Is(err, dht.ErrClosed) {
			n.log.Warn("re-announce failed", "err", err)
		}
	}()
}

// chooseLayers returns the configured range, or for Auto the least covered one.
func (n *Node) chooseLayers(ctx context.Context, id cid.Cid) (int, int, error) {
	L := n.cfg.model.Config.Layers
	l := n.cfg.layers
	if !l.Auto {
		if l.First < 0 || l.Last > L || l.First >= l.Last {
			return 0, 0, fmt.Errorf("layers %d:%d outside the model's 0:%d", l.First, l.Last, L)
		}
		return l.First, l.Last, nil
	}
	maxLayers := l.MaxLayers
	if maxLayers <= 0 {
		maxLayers = layersThatFit(n.cfg.model)
	}
	cov, err := n.disc.Watch(ctx, id, L)
	if err != nil {
		return 0, 0, err
	}
	defer cov.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	snap, err := cov.WaitFor(wctx, func(s dht.Snapshot) bool { return !s.Refreshed.IsZero() })
	cancel()
	if err != nil {
		snap = cov.Snapshot() // no answer in time: choose from what is known
	}
	first, last := dht.ChooseLayers(snap.Without(n.h.ID()), L, maxLayers)
	n.log.Info("layers chosen", "layers", pipeline.LayerRange{First: first, Last: last}, "max_layers", maxLayers, "known_servers", len(snap.Records))
	return first, last, nil
}

// Ledger is the node's ledger: its chain, everyone's it has learnt, balances.
func (n *Node) Ledger() *Ledger { return n.ledger }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.h }

// ID is the node's peer ID: its wallet.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs are the node's full multiaddrs, /p2p/<id> included, to pass as --bootstrap.
func (n *Node) Addrs() []ma.Multiaddr { return FullAddrs(n.h) }

// Discovery is the node's DHT and gossip.
func (n *Node) Discovery() *dht.Discovery { return n.disc }

// Serving reports the model and layers the node serves, if it is a volunteer.
func (n *Node) Serving() (cid.Cid, pipeline.LayerRange, bool) {
	if n.srv == nil {
		return cid.Undef, pipeline.LayerRange{}, false
	}
	return n.modelID, n.srv.Layers(), true
}

// StageServer is the volunteer's stage server, nil for other nodes.
func (n *Node) StageServer() *pipeline.StageServer { return n.srv }

// Close leaves the network cleanly: it withdraws the announcement, fails open
// sessions with a clear error (their clients re-plan), and stops everything.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	var errs []error
	if n.disc != nil && n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.disc.Withdraw(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if n.grid != nil {
		n.grid.Close()
	}
	if n.canaries != nil {
		n.canaries.stop()
	}
	if n.auditor != nil {
		n.auditor.Close()
	}
	if n.srv != nil {
		errs = append(errs, n.srv.Close())
	}
	if n.stopInfo != nil {
		n.stopInfo()
	}
	if n.disc != nil {
		errs = append(errs, n.disc.Close())
	}
	if n.lan != nil {
		errs = append(errs, n.lan.Close())
	}
	if n.link != nil {
		errs = append(errs, n.link.Close())
	}
	if n.repl != nil {
		errs = append(errs, n.repl.Close())
	}
	if n.ledger != nil {
		n.ledger.close()
		errs = append(errs, n.ledger.st.Close())
	}
	if n.hello != nil {
		n.hello.close()
	}
	if n.h != nil {
		errs = append(errs, n.h.Close())
	}
	return errors.Join(errs...)
}

// PeerSource lists, for the route planner, the peers a coverage view knows serve
// its model, with their costs: compute time from the announced throughput, load
// and grid score from the record, latency as this host has measured it.
func (n *Node) PeerSource(cov *dht.Coverage) pipeline.PeerSource {
	return func(ctx context.Context) ([]pipeline.StagePeer, error) {
		// Never itself: a host cannot open streams to itself, and a node
		// does not pay itself.
		peers := slices.DeleteFunc(stagePeers(n.h, cov.Snapshot()), func(p pipeline.StagePeer) bool { return p.Peer == string(n.h.ID()) })
		return n.byReliability(peers), nil
	}
}

// WaitAudits returns when the audits of the sessions this node used so far
// are done and recorded, or when ctx ends: a client about to leave waits, so
// its verdicts are not dropped.
func (n *Node) WaitAudits(ctx context.Context) error {
	if n.auditor == nil {
		return nil
	}
	return n.auditor.Wait(ctx)
}

// byReliability cuts the routing share of peers that failed audits, as their
// credits are cut: a peer of reliability R (from its audits on the chains this
// node holds) is planned as if its layers and its distance took 1/R² as long
// (at least a millisecond away: an unmeasured peer too), and one of
// reliability 0 not at all.
func (n *Node) byReliability(peers []pipeline.StagePeer) []pipeline.StagePeer {
	out := peers[:0]
	for _, p := range peers {
		k, err := pipeline.PeerKey(peer.ID(p.Peer))
		if err != nil {
			out = append(out, p)
			continue
		}
		t, err := n.ledger.Trust(k)
		switch {
		case err != nil || t.Reliability >= 1000:
		case t.Reliability == 0:
			continue
		default:
			f := (1000 / float64(t.Reliability)) * (1000 / float64(t.Reliability))
			p.LayerTime = time.Duration(float64(p.LayerTime) * f)
			p.Latency = time.Duration(float64(max(p.Latency, time.Millisecond)) * f)
		}
		out = append(out, p)
	}
	return out
}

func stagePeers(h host.Host, snap dht.Snapshot) []pipeline.StagePeer {
	var out []pipeline.StagePeer
	for id, rec := range snap.Records {
		sm, ok := rec.Serving(snap.Model)
		if !ok || sm.Throughput == 0 {
			continue
		}
		out = append(out, pipeline.StagePeer{
			Candidate: pipeline.Candidate{
				Peer:      string(id),
				First:     int(sm.First),
				Last:      int(sm.Last),
				LayerTime: time.Duration(float64(time.Second) / float64(sm.Throughput)),
				Latency:   h.Peerstore().LatencyEWMA(id),
				Load:      float64(rec.Load) / 1000,
				PGrid:     float64(rec.PGrid) / 1000,
			},
			Addrs: slices.Clone(rec.Addrs),
		})
	}
	slices.SortFunc(out, func(a, b pipeline.StagePeer) int {
		switch {
		case a.Peer < b.Peer:
			return -1
		case a.Peer > b.Peer:
			return 1
		}
		return 0
	})
	return out
}
