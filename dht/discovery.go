package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Errors of a Discovery.
var (
	// ErrClosed: the Discovery was closed.
	ErrClosed = errors.New("dht: discovery closed")
	// ErrNoBootstrap: none of the bootstrap peers could be reached.
	ErrNoBootstrap = errors.New("dht: no bootstrap peer reachable")
)

// Discovery is one node's view of and voice in the imece network: the private
// Kademlia DHT, the per-model gossip topics, this node's announcement and the
// coverage of the models it watches. It owns every goroutine it starts; Close
// stops them. It does not own the host.
type Discovery struct {
	h         host.Host
	cfg       config
	log       *slog.Logger
	key       crypto.PrivKey
	validator Validator
	dht       *kaddht.IpfsDHT
	ps        *pubsub.PubSub // nil without gossip

	ctx    context.Context // lifetime of pubsub and of every loop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	notify *network.NotifyBundle

	mu     sync.Mutex
	closed bool
	models map[cid.Cid]*modelState

	annMu sync.Mutex // serialises Announce, UpdateRecord's lookup, Withdraw and Close
	ann   *announcer

	seqMu   sync.Mutex
	lastSeq uint64
}

// New starts discovery on h, whose identity must be an Ed25519 key (records are
// signed with it and verified against the peer ID). Call Bootstrap next.
func New(h host.Host, opts ...Option) (_ *Discovery, err error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil || key.Type() != pb.KeyType_Ed25519 {
		return nil, ErrUnsupportedKey
	}
	d := &Discovery{
		h:         h,
		cfg:       cfg,
		log:       cfg.logger.With("peer", h.ID()),
		key:       key,
		validator: Validator{Now: cfg.now, ClockSkew: cfg.clockSkew, MaxTTL: cfg.maxTTL},
		models:    map[cid.Cid]*modelState{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.cancel()
			if d.dht != nil {
				_ = d.dht.Close()
			}
		}
	}()

	mode := map[Mode]kaddht.ModeOpt{ModeAuto: kaddht.ModeAuto, ModeServer: kaddht.ModeServer, ModeClient: kaddht.ModeClient}[cfg.mode]
	dhtOpts := []kaddht.Option{
		kaddht.Mode(mode),
		kaddht.ProtocolPrefix(ProtocolPrefix),
		// A validator set of our own: without it kad-dht adds the IPFS "pk"
		// and "ipns" namespaces, which a private network has no use for.
		kaddht.Validator(record.NamespacedValidator{}),
		kaddht.NamespacedValidator(Namespace, d.validator),
		kaddht.MaxRecordAge(cfg.maxTTL),
		kaddht.ProviderManagerOpts(records.ProvideValidity(cfg.provideValidity)),
	}
	if len(cfg.bootstrap) > 0 {
		dhtOpts = append(dhtOpts, kaddht.BootstrapPeers(cfg.bootstrap...))
	}
	if d.dht, err = kaddht.New(h, dhtOpts...); err != nil {
		return nil, fmt.Errorf("dht: start kademlia: %w", err)
	}
	if cfg.gossip {
		// Flood publishing (off by default in this GossipSub) sends our own
		// record to every topic peer at once instead of only to a mesh that
		// forms at the next heartbeat: records are small and rare, and a join
		// should be seen at once.
		// Queues sized for bursts of ledger blocks, which share this router:
		// the defaults (32) drop messages under load, and recovering them
		// by pulls costs more than the memory.
		if d.ps, err = pubsub.NewGossipSub(d.ctx, h, pubsub.WithFloodPublish(true),
			pubsub.WithValidateQueueSize(512), pubsub.WithPeerOutboundQueueSize(512)); err != nil {
			return nil, fmt.Errorf("dht: start gossipsub: %w", err)
		}
	}
	if cfg.disconnectRecheck {
		d.notify = &network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
			d.onDisconnect(n, c.RemotePeer())
		}}
		h.Network().Notify(d.notify)
	}
	return d, nil
}

// Bootstrap connects to the bootstrap peers and fills the routing table. It
// fails with ErrNoBootstrap when bootstrap peers were given and none answered;
// a node without bootstrap peers (the first bootstrap node) succeeds alone.
func (d *Discovery) Bootstrap(ctx context.Context) error {
	if d.isClosed() {
		return ErrClosed
	}
	if n := len(d.cfg.bootstrap); n > 0 {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, ai := range d.cfg.bootstrap {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, d.cfg.queryTimeout)
				defer cancel()
				if errs[i] = d.h.Connect(cctx, ai); errs[i] != nil {
					d.log.Warn("bootstrap peer unreachable", "bootstrap", ai.ID, "err", errs[i])
				}
			})
		}
		wg.Wait()
		ok := false
		for _, e := range errs {
			ok = ok || e == nil
		}
		if !ok {
			return fmt.Errorf("%w: %w", ErrNoBootstrap, errors.Join(errs...))
		}
	}
	if err := d.dht.Bootstrap(ctx); err != nil {
		return fmt.Errorf("dht: bootstrap: %w", err)
	}
	if len(d.cfg.bootstrap) == 0 {
		return nil
	}
	// The DHT adds a peer once identify has shown it speaks the DHT protocol,
	// shortly after the connection; until then the table is empty and every
	// lookup fails. A bootstrap peer of another network never gets there.
	ctx, cancel := d.timeout(ctx)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for d.dht.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("dht: bootstrap: empty routing table: %w", ctx.Err())
		}
	}
	// Wait for one routing-table refresh so that a caller announcing or
	// watching right after Bootstrap already knows its neighbourhood.
	select {
	case err := <-d.dht.RefreshRoutingTable():
		if err != nil {
			d.log.Debug("routing table refresh incomplete", "err", err)
		}
		d.log.Info("bootstrapped", "routing_table", d.dht.RoutingTable().Size())
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops announcing (without withdrawing: call Withdraw first to leave
// cleanly), stops every watch, gossip and the DHT. The host stays open.
func (d *Discovery) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()

	// After closed is set no announcer starts; one being installed finishes first.
	d.annMu.Lock()
	if d.ann != nil {
		d.ann.stop()
		d.ann = nil
	}
	d.annMu.Unlock()

	d.mu.Lock()
	states := make([]*modelState, 0, len(d.models))
	for _, st := range d.models {
		states = append(states, st)
	}
	d.models = map[cid.Cid]*modelState{}
	d.mu.Unlock()

	if d.notify != nil {
		d.h.Network().StopNotify(d.notify)
	}
	for _, st := range states {
		st.stop()
	}
	err := d.dht.Close()
	d.cancel()
	d.wg.Wait()
	if err != nil {
		return fmt.Errorf("dht: close kademlia: %w", err)
	}
	return nil
}

func (d *Discovery) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// acquire returns the shared state of model, starting it on first use.
func (d *Discovery) acquire(model cid.Cid, layers int) (*modelState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if st := d.models[model]; st != nil {
		if err := st.setLayers(layers); err != nil {
			return nil, err
		}
		st.refs++
		return st, nil
	}
	st, err := d.startModel(model, layers)
	if err != nil {
		return nil, err
	}
	st.refs = 1
	d.models[model] = st
	return st, nil
}

// release drops one reference to st, stopping it with the last.
func (d *Discovery) release(st *modelState) {
	d.mu.Lock()
	if d.models[st.model] != st {
		d.mu.Unlock()
		return // already stopped by Close
	}
	st.refs--
	last := st.refs == 0
	if last {
		delete(d.models, st.model)
	}
	d.mu.Unlock()
	if last {
		st.stop()
	}
}

// onDisconnect runs on the swarm's goroutine: it only hands the peer to the
// models whose coverage lists it, which dial it back (modelState.recheckLoop).
func (d *Discovery) onDisconnect(n network.Network, p peer.ID) {
	if n.Connectedness(p) == network.Connected {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.models {
		st.suspect(p)
	}
}

// nextSeq returns a sequence number above every one this node used, and above
// the clock in milliseconds, so that a restarted node without saved state
// still outranks its own records from before the restart.
func (d *Discovery) nextSeq() uint64 {
	d.seqMu.Lock()
	defer d.seqMu.Unlock()
	d.lastSeq = max(d.lastSeq+1, uint64(d.cfg.now().UnixMilli()))
	return d.lastSeq
}

// expiry is the Unix second at which a record made now expires: now + TTL,
// rounded up so the record never lives less than the TTL.
func (d *Discovery) expiry() int64 {
	t := d.cfg.now().Add(d.cfg.ttl)
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

// Routing exposes the DHT to the rest of the node (e.g. to find a peer's
// addresses); discovery remains its owner and closes it.
func (d *Discovery) Routing() routing.Routing { return d.dht }

// PubSub is the host's GossipSub router, shared with other gossiping parts of the
// node (the ledger's block and fraud topics): a host runs one router. It is nil
// when gossip is off.
func (d *Discovery) PubSub() *pubsub.PubSub { return d.ps }

// timeout bounds one network operation by the configured query timeout.
func (d *Discovery) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.queryTimeout)
}

// since is the time since t on the discovery clock.
func (d *Discovery) since(t time.Time) time.Duration { return d.cfg.now().Sub(t) }
