package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// UserAgent is what the host tells peers in identify, so operators can tell
// imece nodes from other libp2p software in their logs.
const UserAgent = "imece"

// Connection-manager defaults. The low watermark leaves room for a DHT routing
// table of a few hundred nodes, gossip meshes and the chain neighbours of
// SessionBudget sessions; above the high watermark the least useful
// connections are trimmed back to the low one. New connections are exempt for
// the grace period so a dial made to start a session is not trimmed before its
// stream opens. Pipeline code protects the peers of live sessions
// (ConnManager().Protect) so they are never trimmed.
const (
	DefaultConnLow   = 128
	DefaultConnHigh  = 256
	DefaultConnGrace = time.Minute
)

// defaultListenAddrs are where a node listens unless told otherwise: every
// IPv4 interface, an OS-chosen port, over TCP and QUIC.
var defaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
}

// HostOption configures NewHost.
type HostOption func(*hostConfig) error

type hostConfig struct {
	key          crypto.PrivKey
	listen       []ma.Multiaddr
	natTraversal bool
	limits       *rcmgr.ConcreteLimitConfig
	connLow      int
	connHigh     int
	connGrace    time.Duration
	registerer   prometheus.Registerer
	log          *slog.Logger
	extra        []libp2p.Option
}

func defaultHostConfig() hostConfig {
	return hostConfig{
		natTraversal: true,
		connLow:      DefaultConnLow,
		connHigh:     DefaultConnHigh,
		connGrace:    DefaultConnGrace,
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (c *hostConfig) validate() error {
	switch {
	case c.key == nil:
		return errors.New("no identity key (WithIdentity): the peer ID is the node's wallet, so it is never made up")
	case c.key.Type() != cryptopb.KeyType_Ed25519:
		return fmt.Errorf("identity key is %s, want Ed25519", c.key.Type())
	case c.connLow < 0 || c.connHigh <= 0 || c.connLow > c.connHigh:
		return fmt.Errorf("connection watermarks low=%d high=%d: want 0 <= low <= high, high > 0", c.connLow, c.connHigh)
	case c.connGrace < 0:
		return fmt.Errorf("connection grace period %v is negative", c.connGrace)
	}
	return nil
}

// WithIdentity sets the host's private key, normally from
// LoadOrCreateIdentity. It is required: a node's peer ID is its wallet.
func WithIdentity(key crypto.PrivKey) HostOption {
	return func(c *hostConfig) error {
		c.key = key
		return nil
	}
}

// WithListenAddrs replaces the default listen addresses (TCP and QUIC on all
// IPv4 interfaces, OS-chosen ports) with the given multiaddrs, e.g.
// "/ip4/127.0.0.1/tcp/0" in tests or a fixed port for a bootstrap node.
func WithListenAddrs(addrs ...string) HostOption {
	return func(c *hostConfig) error {
		for _, s := range addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return fmt.Errorf("listen address %q: %w", s, err)
			}
			c.listen = append(c.listen, a)
		}
		return nil
	}
}

// WithNATTraversal turns the features for volunteers behind NAT on or off as
// one: the relay client transport (to be reachable through a relay for
// signalling), hole punching (DCUtR, to turn a relayed connection into a
// direct one), AutoNAT v1 service for others and AutoNAT v2 for ourselves.
// On by default; tests and loopback-only nodes turn it off. Activations never
// flow over a relay either way: see DirectOnly.
func WithNATTraversal(enabled bool) HostOption {
	return func(c *hostConfig) error {
		c.natTraversal = enabled
		return nil
	}
}

// WithResourceLimits replaces DefaultResourceLimits, e.g. for a node with a
// larger memory budget or a test that wants tiny limits.
func WithResourceLimits(limits rcmgr.ConcreteLimitConfig) HostOption {
	return func(c *hostConfig) error {
		c.limits = &limits
		return nil
	}
}

// WithConnLimits sets the connection manager's watermarks and grace period
// (defaults DefaultConnLow, DefaultConnHigh, DefaultConnGrace).
func WithConnLimits(low, high int, grace time.Duration) HostOption {
	return func(c *hostConfig) error {
		c.connLow, c.connHigh, c.connGrace = low, high, grace
		return nil
	}
}

// WithMetrics registers libp2p's Prometheus metrics on reg. Without it the
// host records no metrics, so nothing touches Prometheus' global registry and
// many hosts can share a test process.
func WithMetrics(reg prometheus.Registerer) HostOption {
	return func(c *hostConfig) error {
		if reg == nil {
			return errors.New("metrics registerer is nil")
		}
		c.registerer = reg
		return nil
	}
}

// WithLogger sets where the host's own messages go (default: discarded).
func WithLogger(log *slog.Logger) HostOption {
	return func(c *hostConfig) error {
		if log == nil {
			return errors.New("logger is nil")
		}
		c.log = log
		return nil
	}
}

// WithLibp2pOptions appends raw libp2p options after imece's own, for the
// testnet harness and experiments (e.g. libp2p.ForceReachabilityPrivate). They
// can undo any choice NewHost makes; production wiring should not need them.
func WithLibp2pOptions(opts ...libp2p.Option) HostOption {
	return func(c *hostConfig) error {
		c.extra = append(c.extra, opts...)
		return nil
	}
}

// NewHost starts the libp2p host of an imece node: TCP and QUIC transports,
// Noise and TLS security, yamux, a connection manager, a resource manager sized
// for activation streams (DefaultResourceLimits) and, unless turned off, NAT
// traversal. The caller owns the host and must Close it. ctx bounds only
// construction; the host lives until Close.
func NewHost(ctx context.Context, opts ...HostOption) (host.Host, error) {
	cfg := defaultHostConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	if len(cfg.listen) == 0 {
		if err := WithListenAddrs(defaultListenAddrs...)(&cfg); err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
	}
	limits := DefaultResourceLimits()
	if cfg.limits != nil {
		limits = *cfg.limits
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.connLow, cfg.connHigh, connmgr.WithGracePeriod(cfg.connGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("host: connection manager: %w", err)
	}

	lo := []libp2p.Option{
		libp2p.Identity(cfg.key),
		libp2p.ListenAddrs(cfg.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(UserAgent),
	}
	if cfg.registerer != nil {
		lo = append(lo, libp2p.PrometheusRegisterer(cfg.registerer))
	} else {
		lo = append(lo, libp2p.DisableMetrics())
	}
	if cfg.natTraversal {
		lo = append(lo,
			libp2p.EnableRelay(),
			libp2p.EnableHolePunching(),
			libp2p.EnableNATService(),
			libp2p.EnableAutoNATv2(),
		)
	} else {
		lo = append(lo, libp2p.DisableRelay())
	}
	lo = append(lo, cfg.extra...)

	h, err := libp2p.New(lo...)
	if err != nil {
		// libp2p closes rm and cm on some failure paths but not when an option
		// fails to apply; both Close methods are idempotent.
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("host: start libp2p: %w", err)
	}
	cfg.log.Info("host started",
		"peer", h.ID(), "listen", h.Network().ListenAddresses(), "nat_traversal", cfg.natTraversal)
	return h, nil
}
