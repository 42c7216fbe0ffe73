package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// BootstrapProtectTag is the connection-manager tag under which a MeshLink
// protects its bootstrap peers from trimming.
const BootstrapProtectTag = "imece/bootstrap"

// Reconnection defaults: the first retry comes after a second, so a
// bootstrap node's quick restart costs a second of isolation; retries are
// capped at a minute, so a node left alone by a long outage notices recovery
// within a minute without hammering a restarting node.
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultDialTimeout = 10 * time.Second
	backoffJitter      = 0.2
)

// ParseBootstrapAddrs turns --bootstrap values such as
// "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…" into peers to dial. Every address
// must name its peer: the peer ID is what authenticates the bootstrap node.
// Several addresses of one peer become one entry; order of first appearance
// is kept.
func ParseBootstrapAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	index := map[peer.ID]int{}
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w", s, err)
		}
		transport, id := peer.SplitAddr(a)
		if id == "" {
			return nil, fmt.Errorf("bootstrap address %q has no /p2p/<peer ID> component", s)
		}
		if transport == nil {
			return nil, fmt.Errorf("bootstrap address %q has no transport part (e.g. /ip4/…/tcp/…)", s)
		}
		i, ok := index[id]
		if !ok {
			i = len(out)
			index[id] = i
			out = append(out, peer.AddrInfo{ID: id})
		}
		out[i].Addrs = append(out[i].Addrs, transport)
	}
	return out, nil
}

// MeshLink keeps a node attached to the mesh through its bootstrap peers. It
// dials them at start, protects their connections from trimming, redials any
// that drop, and, when the node has lost every peer (its network went away,
// the bootstrap node restarted), redials with capped, jittered exponential
// backoff. Each time the node goes from no peers to some, it calls the
// OnReconnect hook, so the node re-announces itself in the DHT.
//
// A MeshLink with no bootstrap peers (the first node of a network) dials
// nothing but still calls the hook when peers come back to it.
type MeshLink struct {
	host  host.Host
	peers []peer.AddrInfo
	cfg   meshLinkConfig

	sub       event.Subscription
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// MeshLinkOption configures NewMeshLink.
type MeshLinkOption func(*meshLinkConfig) error

type meshLinkConfig struct {
	onReconnect func()
	minBackoff  time.Duration
	maxBackoff  time.Duration
	jitter      float64
	dialTimeout time.Duration
	log         *slog.Logger

	// Seams for tests: the reconnect schedule is checked with a fake clock and
	// a dialer that fails on demand.
	clock   clock
	connect func(context.Context, peer.AddrInfo) error
	rand    func() float64
}

func (c *meshLinkConfig) validate() error {
	switch {
	case c.minBackoff <= 0 || c.maxBackoff < c.minBackoff:
		return fmt.Errorf("reconnect backoff min=%v max=%v: want 0 < min <= max", c.minBackoff, c.maxBackoff)
	case c.dialTimeout <= 0:
		return fmt.Errorf("dial timeout %v: want > 0", c.dialTimeout)
	case c.jitter < 0 || c.jitter >= 1:
		return fmt.Errorf("backoff jitter %v: want [0, 1)", c.jitter)
	}
	return nil
}

// WithOnReconnect sets the hook called each time the node goes from having no
// peers to having at least one, including the first time when the node had
// none at start (so a node started while its bootstrap peers were down
// announces itself once they are up). It runs on the MeshLink's goroutine:
// it should return quickly, start long work elsewhere, and must not call
// Close.
func WithOnReconnect(f func()) MeshLinkOption {
	return func(c *meshLinkConfig) error {
		c.onReconnect = f
		return nil
	}
}

// WithReconnectBackoff sets the first and the longest wait between attempts
// to reach missing bootstrap peers (defaults DefaultMinBackoff,
// DefaultMaxBackoff).
func WithReconnectBackoff(min, max time.Duration) MeshLinkOption {
	return func(c *meshLinkConfig) error {
		c.minBackoff, c.maxBackoff = min, max
		return nil
	}
}

// WithDialTimeout bounds each dial of a bootstrap peer (default
// DefaultDialTimeout).
func WithDialTimeout(d time.Duration) MeshLinkOption {
	return func(c *meshLinkConfig) error {
		c.dialTimeout = d
		return nil
	}
}

// WithMeshLinkLogger sets where the MeshLink reports joins, losses and
// unreachable bootstrap peers (default: discarded).
func WithMeshLinkLogger(log *slog.Logger) MeshLinkOption {
	return func(c *meshLinkConfig) error {
		if log == nil {
			return errors.New("logger is nil")
		}
		c.log = log
		return nil
	}
}

// NewMeshLink starts keeping h attached to the mesh through bootstrap (as
// returned by ParseBootstrapAddrs). It returns at once; dials happen in the
// background. The caller must Close it before closing h.
func NewMeshLink(h host.Host, bootstrap []peer.AddrInfo, opts ...MeshLinkOption) (*MeshLink, error) {
	cfg := meshLinkConfig{
		minBackoff:  DefaultMinBackoff,
		maxBackoff:  DefaultMaxBackoff,
		jitter:      backoffJitter,
		dialTimeout: DefaultDialTimeout,
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		clock:       realClock{},
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("mesh link: %w", err)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mesh link: %w", err)
	}
	if cfg.connect == nil {
		cfg.connect = h.Connect
	}
	var peers []peer.AddrInfo
	for _, ai := range bootstrap {
		switch {
		case ai.ID == "":
			return nil, errors.New("mesh link: bootstrap peer without an ID")
		case ai.ID == h.ID():
			// A bootstrap node given the network's shared bootstrap list.
			cfg.log.Info("skipping self in bootstrap list", "peer", ai.ID)
			continue
		case len(ai.Addrs) == 0:
			return nil, fmt.Errorf("mesh link: bootstrap peer %s has no address", ai.ID)
		}
		peers = append(peers, ai)
	}

	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(64))
	if err != nil {
		return nil, fmt.Errorf("mesh link: subscribe to connection events: %w", err)
	}
	for _, ai := range peers {
		// Permanent, so the addresses outlive a disconnection: they are how a
		// restarted bootstrap node is found again.
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		h.ConnManager().Protect(ai.ID, BootstrapProtectTag)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &MeshLink{host: h, peers: peers, cfg: cfg, sub: sub, cancel: cancel}

	// The event bus blocks emitters while a subscriber's buffer is full, so a
	// separate goroutine drains events into a one-slot wake-up channel while
	// the main loop is busy dialling.
	wake := make(chan struct{}, 1)
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		for range sub.Out() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		defer l.wg.Done()
		l.run(ctx, wake)
	}()
	return l, nil
}

// Close stops reconnecting and waits for in-flight dials and the hook to
// return. Connections stay open; bootstrap peers lose their protection.
func (l *MeshLink) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		err := l.sub.Close()
		l.wg.Wait()
		for _, ai := range l.peers {
			l.host.ConnManager().Unprotect(ai.ID, BootstrapProtectTag)
		}
		if err != nil {
			l.cfg.log.Debug("closing connection event subscription failed", "err", err)
		}
	})
	return nil
}

func (l *MeshLink) run(ctx context.Context, wake <-chan struct{}) {
	b := newBackoff(l.cfg.minBackoff, l.cfg.maxBackoff, l.cfg.jitter)
	if l.cfg.rand != nil {
		b.rand = l.cfg.rand
	}
	var retry <-chan time.Time
	stopRetry := func() bool { return false }
	defer func() { stopRetry() }()

	connected := l.hasPeers()
	attempt := len(l.peers) > 0
	for {
		now := l.hasPeers()
		switch {
		case now && !connected:
			l.cfg.log.Info("joined the mesh", "peers", len(l.host.Network().Peers()))
			if l.cfg.onReconnect != nil {
				l.cfg.onReconnect()
			}
		case !now && connected:
			// A bootstrap node whose peers left is not in trouble: it waits
			// for them to come back; a node that lost its way in is.
			level := slog.LevelWarn
			if len(l.peers) == 0 {
				level = slog.LevelInfo
			}
			l.cfg.log.Log(ctx, level, "lost all peers", "bootstrap_peers", len(l.peers))
			b.reset()
			attempt = len(l.peers) > 0
		}
		connected = now

		if attempt {
			attempt = false
			stopRetry()
			retry = nil
			missing := l.missing()
			if len(missing) > 0 {
				l.dial(ctx, missing)
			}
			if ctx.Err() != nil {
				return
			}
			still := l.missing()
			if connected && len(still) < len(missing) && l.cfg.onReconnect != nil {
				// A bootstrap node came back while we had other peers: it may
				// have restarted with an empty DHT, so announce again.
				l.cfg.log.Info("bootstrap peer back", "reconnected", len(missing)-len(still))
				l.cfg.onReconnect()
			}
			if len(still) > 0 {
				wait := b.next()
				// Alone, this is the node's main problem; with other peers, a
				// dead bootstrap node is retried quietly at the capped pace.
				level := slog.LevelDebug
				if !l.hasPeers() {
					level = slog.LevelWarn
				}
				l.cfg.log.Log(ctx, level, "bootstrap peers unreachable", "missing", len(still), "of", len(l.peers), "retry_in", wait)
				retry, stopRetry = l.cfg.clock.newTimer(wait)
			} else {
				b.reset()
			}
			continue // look at the connection state the dials left behind
		}

		select {
		case <-ctx.Done():
			return
		case <-wake:
			// A bootstrap peer that dropped while others remain is redialled
			// at once, unless a backed-off retry is already scheduled.
			attempt = retry == nil && len(l.missing()) > 0
		case <-retry:
			attempt = true
		}
	}
}

// dial connects to every peer in missing at once, each bounded by the dial
// timeout, and returns when all have finished.
func (l *MeshLink) dial(ctx context.Context, missing []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, ai := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Our own backoff paces these dials; the swarm's per-address
			// backoff (5 s and growing, from earlier failures) would otherwise
			// refuse the dial that finds a bootstrap node back.
			if sw, ok := l.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
				sw.Backoff().Clear(ai.ID)
			}
			dctx, cancel := context.WithTimeout(ctx, l.cfg.dialTimeout)
			defer cancel()
			if err := l.cfg.connect(dctx, ai); err != nil {
				l.cfg.log.Debug("bootstrap dial failed", "peer", ai.ID, "err", err)
				return
			}
			l.cfg.log.Debug("bootstrap peer connected", "peer", ai.ID)
		}()
	}
	wg.Wait()
}

// missing returns the bootstrap peers without a direct connection.
func (l *MeshLink) missing() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, ai := range l.peers {
		if l.host.Network().Connectedness(ai.ID) != network.Connected {
			out = append(out, ai)
		}
	}
	return out
}

func (l *MeshLink) hasPeers() bool {
	return len(l.host.Network().Peers()) > 0
}
