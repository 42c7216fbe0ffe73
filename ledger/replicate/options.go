package replicate

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/imece/imece/ledger"
)

// Source says how a block or a fraud proof reached this node's store.
type Source uint8

// The ways a block or proof arrives.
const (
	// FromGossip: delivered on the network's topic (or held after a gap and
	// applied once the blocks before it arrived).
	FromGossip Source = 1
	// FromSync: pulled from a peer over ProtocolID.
	FromSync Source = 2
)

// String names the source, for logs and metrics labels.
func (s Source) String() string {
	switch s {
	case FromGossip:
		return "gossip"
	case FromSync:
		return "sync"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Option configures a Replicator.
type Option func(*config) error

type config struct {
	logger         *slog.Logger
	now            func() time.Time
	aeInterval     time.Duration
	aeFanout       int
	rangeBatch     int
	headsBatch     int
	requestTimeout time.Duration
	serveTimeout   time.Duration
	maxServing     int
	syncWorkers    int
	gapDelay       time.Duration
	tailDelay      time.Duration
	maxHeld        int
	gossipBuffer   int
	onBlock        func(*ledger.Block, Source)
	onFraud        func(*ledger.FraudProof, Source)
}

func defaultConfig() config {
	return config{
		logger:         slog.New(slog.DiscardHandler),
		now:            time.Now,
		aeInterval:     DefaultAntiEntropyInterval,
		aeFanout:       DefaultAntiEntropyFanout,
		rangeBatch:     DefaultRangeBatch,
		headsBatch:     DefaultHeadsBatch,
		requestTimeout: DefaultRequestTimeout,
		serveTimeout:   DefaultServeTimeout,
		maxServing:     DefaultMaxServing,
		syncWorkers:    DefaultSyncWorkers,
		gapDelay:       DefaultGapDelay,
		tailDelay:      DefaultTailDelay,
		maxHeld:        DefaultMaxHeld,
		gossipBuffer:   DefaultGossipBuffer,
	}
}

// errBadOption is wrapped by every invalid option.
var errBadOption = errors.New("replicate: invalid option")

func (c *config) validate() error {
	switch {
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", errBadOption)
	case c.now == nil:
		return fmt.Errorf("%w: nil clock", errBadOption)
	case c.aeInterval < 0 || c.aeFanout < 0:
		return fmt.Errorf("%w: anti-entropy every %v to %d peers", errBadOption, c.aeInterval, c.aeFanout)
	case c.rangeBatch < 1 || c.rangeBatch > MaxRangeBlocks:
		return fmt.Errorf("%w: range batch %d, want 1 to %d", errBadOption, c.rangeBatch, MaxRangeBlocks)
	case c.headsBatch < 1 || c.headsBatch > MaxHeadsPerPage:
		return fmt.Errorf("%w: heads batch %d, want 1 to %d", errBadOption, c.headsBatch, MaxHeadsPerPage)
	case c.requestTimeout <= 0 || c.serveTimeout <= 0:
		return fmt.Errorf("%w: non-positive timeout", errBadOption)
	case c.maxServing < 1 || c.syncWorkers < 1:
		return fmt.Errorf("%w: %d requests served, %d sync workers", errBadOption, c.maxServing, c.syncWorkers)
	case c.gapDelay < 0 || c.tailDelay < 0 || c.maxHeld < 0 || c.gossipBuffer < 1:
		return fmt.Errorf("%w: gap delay %v, tail delay %v, %d held, gossip buffer %d", errBadOption,
			c.gapDelay, c.tailDelay, c.maxHeld, c.gossipBuffer)
	}
	return nil
}

// WithLogger routes the Replicator's logs to l (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithClock sets the clock that dates the pulls scheduled after gaps
// (default time.Now). Timers, stream deadlines and anti-entropy rounds run
// on real time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error { c.now = now; return nil }
}

// WithAntiEntropy sets the mean interval between anti-entropy rounds and how
// many peers each round compares heads with. An interval of 0 turns the
// periodic rounds off: the node then syncs only when it connects to a peer
// and after gaps (tests that want to see one mechanism alone).
func WithAntiEntropy(interval time.Duration, fanout int) Option {
	return func(c *config) error { c.aeInterval, c.aeFanout = interval, fanout; return nil }
}

// WithBatches sets how many blocks one range request asks for (at most
// MaxRangeBlocks) and how many heads one heads request asks for (at most
// MaxHeadsPerPage). Small batches exercise paging in tests.
func WithBatches(rangeBlocks, heads int) Option {
	return func(c *config) error { c.rangeBatch, c.headsBatch = rangeBlocks, heads; return nil }
}

// WithTimeouts bounds one sync request this node makes (request) and the
// answer to one it serves (serve).
func WithTimeouts(request, serve time.Duration) Option {
	return func(c *config) error { c.requestTimeout, c.serveTimeout = request, serve; return nil }
}

// WithMaxServing bounds how many sync requests the node answers at once.
func WithMaxServing(n int) Option {
	return func(c *config) error { c.maxServing = n; return nil }
}

// WithSyncWorkers sets how many pulls run at once.
func WithSyncWorkers(n int) Option {
	return func(c *config) error { c.syncWorkers = n; return nil }
}

// WithGapDelays sets how long a gap seen on gossip waits for the missing
// blocks before they are pulled (gap), and how long after that the chain is
// pulled again from the peers that had it, for blocks lost at the end of a
// burst (tail).
func WithGapDelays(gap, tail time.Duration) Option {
	return func(c *config) error { c.gapDelay, c.tailDelay = gap, tail; return nil }
}

// WithMaxHeld bounds the blocks held after a gap until the blocks before them
// arrive (0 holds none: every gap is filled by a pull alone).
func WithMaxHeld(n int) Option {
	return func(c *config) error { c.maxHeld = n; return nil }
}

// WithGossipBuffer sets how many delivered gossip messages may wait for the
// store; GossipSub drops more, and pulls fill the gaps.
func WithGossipBuffer(n int) Option {
	return func(c *config) error { c.gossipBuffer = n; return nil }
}

// WithOnBlock calls fn for every block this node's store accepts from another
// node, with how it came: how benchmarks measure replication lag and nodes
// count what they learn. fn runs on the replication path and must not block.
func WithOnBlock(fn func(b *ledger.Block, src Source)) Option {
	return func(c *config) error { c.onBlock = fn; return nil }
}

// WithOnFraudProof calls fn when this node's store freezes an owner, from a
// fork it detected (src is how the second block came) or a proof it was
// given. fn must not block.
func WithOnFraudProof(fn func(p *ledger.FraudProof, src Source)) Option {
	return func(c *config) error { c.onFraud = fn; return nil }
}
