package dht

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Default timings. Records live minutes, not hours (DESIGN.md §3): a node that
// vanishes without withdrawing is gone from every view within RecordTTL, and a
// node re-announces three times per TTL so that one lost announcement costs
// nothing.
const (
	DefaultRecordTTL          = 5 * time.Minute
	DefaultReannounceInterval = DefaultRecordTTL / 3
	// DefaultReprovideInterval: provider records only say "ask this peer's
	// record"; liveness comes from the record, so they are refreshed rarely.
	DefaultReprovideInterval = 10 * time.Minute
	// DefaultProvideValidity is how long this node, as a DHT server, keeps
	// provider records others put: three reprovide periods.
	DefaultProvideValidity = 3 * DefaultReprovideInterval
	// DefaultRefreshInterval is how often a watched model is looked up in the
	// DHT; gossip carries the changes in between.
	DefaultRefreshInterval = time.Minute
	// DefaultQueryTimeout bounds one DHT operation (a lookup, a put, a provide).
	DefaultQueryTimeout = 20 * time.Second
	// DefaultRecheckTimeout bounds the dial that checks a disconnected peer.
	DefaultRecheckTimeout = 3 * time.Second
	// DefaultMinUpdateInterval is the shortest time between two publications
	// caused by UpdateRecord: load changes coalesce instead of flooding.
	DefaultMinUpdateInterval = 2 * time.Second
	// DefaultTopicPeers is how many providers of a model a node connects to so
	// that it joins the model's gossip mesh.
	DefaultTopicPeers = 6
)

// Mode is the node's role in the DHT.
type Mode int

const (
	// ModeAuto lets the DHT serve when the node turns out to be publicly
	// reachable (AutoNAT), and act as a client otherwise.
	ModeAuto Mode = iota
	// ModeServer answers DHT queries and stores records: bootstrap nodes and
	// volunteers with public addresses.
	ModeServer
	// ModeClient only queries: light clients and nodes behind NAT.
	ModeClient
)

// Option configures a Discovery.
type Option func(*config) error

type config struct {
	mode              Mode
	bootstrap         []peer.AddrInfo
	logger            *slog.Logger
	now               func() time.Time
	ttl               time.Duration
	reannounce        time.Duration
	reprovide         time.Duration
	provideValidity   time.Duration
	refresh           time.Duration
	queryTimeout      time.Duration
	recheckTimeout    time.Duration
	minUpdate         time.Duration
	clockSkew         time.Duration
	maxTTL            time.Duration
	topicPeers        int
	gossip            bool
	disconnectRecheck bool
}

func defaultConfig() config {
	return config{
		mode:              ModeAuto,
		logger:            slog.New(slog.DiscardHandler),
		now:               time.Now,
		ttl:               DefaultRecordTTL,
		reannounce:        DefaultReannounceInterval,
		reprovide:         DefaultReprovideInterval,
		provideValidity:   DefaultProvideValidity,
		refresh:           DefaultRefreshInterval,
		queryTimeout:      DefaultQueryTimeout,
		recheckTimeout:    DefaultRecheckTimeout,
		minUpdate:         DefaultMinUpdateInterval,
		clockSkew:         DefaultClockSkew,
		maxTTL:            DefaultMaxTTL,
		topicPeers:        DefaultTopicPeers,
		gossip:            true,
		disconnectRecheck: true,
	}
}

// errBadOption is wrapped by every invalid option.
var errBadOption = errors.New("dht: invalid option")

func (c *config) validate() error {
	switch {
	case c.ttl < time.Second:
		return fmt.Errorf("%w: record TTL %v under a second (expiry has second resolution)", errBadOption, c.ttl)
	case c.maxTTL > 0 && c.ttl > c.maxTTL:
		return fmt.Errorf("%w: record TTL %v over the accepted maximum %v", errBadOption, c.ttl, c.maxTTL)
	case c.reannounce <= 0 || c.reannounce >= c.ttl:
		return fmt.Errorf("%w: re-announce interval %v must be positive and under the TTL %v", errBadOption, c.reannounce, c.ttl)
	case c.reprovide <= 0 || c.provideValidity <= c.reprovide:
		return fmt.Errorf("%w: reprovide %v must be positive and under the provide validity %v", errBadOption, c.reprovide, c.provideValidity)
	case c.refresh <= 0 || c.queryTimeout <= 0 || c.recheckTimeout <= 0 || c.minUpdate < 0 || c.clockSkew < 0:
		return fmt.Errorf("%w: non-positive interval or timeout", errBadOption)
	case c.topicPeers < 0:
		return fmt.Errorf("%w: topic peers %d", errBadOption, c.topicPeers)
	}
	return nil
}

// WithMode sets the DHT role (default ModeAuto).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m < ModeAuto || m > ModeClient {
			return fmt.Errorf("%w: mode %d", errBadOption, m)
		}
		c.mode = m
		return nil
	}
}

// WithBootstrapPeers sets the peers Bootstrap connects to first (--bootstrap).
func WithBootstrapPeers(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		c.bootstrap = append(c.bootstrap, peers...)
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", errBadOption)
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock used for record expiry and sequence numbers
// (default time.Now). Timers still run on real time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", errBadOption)
		}
		c.now = now
		return nil
	}
}

// WithRecordTTL sets how long announced records live and how often they are
// re-announced (tests use seconds; production keeps the defaults).
func WithRecordTTL(ttl, reannounce time.Duration) Option {
	return func(c *config) error {
		c.ttl, c.reannounce = ttl, reannounce
		return nil
	}
}

// WithReprovide sets how often provider records are renewed and how long this
// node keeps those others put.
func WithReprovide(interval, validity time.Duration) Option {
	return func(c *config) error {
		c.reprovide, c.provideValidity = interval, validity
		return nil
	}
}

// WithRefreshInterval sets how often a watched model is looked up in the DHT.
func WithRefreshInterval(d time.Duration) Option {
	return func(c *config) error {
		c.refresh = d
		return nil
	}
}

// WithQueryTimeout bounds each DHT operation.
func WithQueryTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.queryTimeout = d
		return nil
	}
}

// WithMinUpdateInterval sets the shortest time between publications caused by
// UpdateRecord.
func WithMinUpdateInterval(d time.Duration) Option {
	return func(c *config) error {
		c.minUpdate = d
		return nil
	}
}

// WithClockSkew sets the expiry allowance for records from other nodes.
func WithClockSkew(d time.Duration) Option {
	return func(c *config) error {
		c.clockSkew = d
		return nil
	}
}

// WithGossip turns the model topics on or off (default on). Without gossip a
// node learns of changes only through DHT refreshes and expiry.
func WithGossip(on bool) Option {
	return func(c *config) error {
		c.gossip = on
		return nil
	}
}

// WithDisconnectRecheck turns on or off the dial-back that drops a served peer
// from coverage as soon as its connections close and it cannot be reached
// (default on). Off, such a peer stays until its record expires.
func WithDisconnectRecheck(on bool, timeout time.Duration) Option {
	return func(c *config) error {
		c.disconnectRecheck = on
		if timeout > 0 {
			c.recheckTimeout = timeout
		}
		return nil
	}
}
