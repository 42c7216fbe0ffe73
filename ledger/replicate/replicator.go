package replicate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

// Replicator keeps a node's store in step with every other node's: it
// announces the node's blocks, stores what others announce, pulls what it
// missed, answers others' pulls, and spreads the proofs of forks. It is safe
// for concurrent use; Close stops everything it started.
type Replicator struct {
	cfg     config
	log     *slog.Logger
	h       host.Host
	st      *store.Store
	ps      *pubsub.PubSub
	network string

	blocks, fraud                *pubsub.Topic
	blockSub, fraudSub           *pubsub.Subscription
	blockTopicVal, fraudTopicVal bool
	events                       event.Subscription

	// ctx ends with Close: every goroutine and request of the Replicator
	// runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// serving bounds the requests answered at once.
	serving chan struct{}
	// wake tells a sync worker there is a new job.
	wake chan struct{}

	mu     sync.Mutex
	closed bool
	// held are blocks past their chain's head, by owner and sequence, kept
	// until the blocks before them arrive; nheld counts them.
	held  map[ledger.Key]map[uint64]*ledger.Block
	nheld int
	// wants are the chains to pull, pulling those being pulled.
	wants   map[ledger.Key]*want
	pulling map[ledger.Key]bool
	// peerQ are the peers to run anti-entropy with, queued their set.
	peerQ  []peer.ID
	queued map[peer.ID]bool
	// streams are the sync requests being answered, reset by Close.
	streams streamSet

	stats     stats
	closeOnce sync.Once
	closeErr  error
}

// streamSet is the set of streams being answered.
type streamSet map[network.Stream]struct{}

// want is a chain to pull: up to which sequence, from whom first, and when.
type want struct {
	upTo uint64
	// open: pull whatever the peers have past the head, not just up to upTo.
	open bool
	// gap: a gap on gossip asked for it; a tail pull follows it.
	gap   bool
	hints []peer.ID
	due   time.Time
}

// Bounds of the Replicator's own bookkeeping, so a flood of valid blocks of
// made-up keys (anyone can make a key) costs a bounded amount of memory.
const (
	maxWants      = 4096
	maxHints      = 4
	maxPullPeers  = 4
	maxQueuedPeer = 1024
)

// New starts replicating st over h for network: it joins network's block and
// fraud-proof topics on ps (the host's one GossipSub router, shared with
// discovery), answers ProtocolID, and syncs with every peer that speaks it
// as it connects. network names the network in topics ("imece-local/<genesis
// hash prefix>"), so blocks of other networks never reach this node. The
// store, host and router stay the caller's: close the Replicator first.
func New(h host.Host, st *store.Store, ps *pubsub.PubSub, network string, opts ...Option) (_ *Replicator, err error) {
	switch {
	case h == nil || st == nil || ps == nil:
		return nil, errors.New("replicate: New needs a host, a store and a GossipSub router")
	case network == "" || len(network) > maxNetworkLen || strings.ContainsAny(network, " \t\r\n"):
		return nil, fmt.Errorf("replicate: network %q: want 1 to %d bytes, no spaces", network, maxNetworkLen)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Replicator{
		cfg: cfg, log: cfg.logger, h: h, st: st, ps: ps, network: network,
		serving: make(chan struct{}, cfg.maxServing),
		wake:    make(chan struct{}, 1),
		held:    make(map[ledger.Key]map[uint64]*ledger.Block),
		wants:   make(map[ledger.Key]*want),
		pulling: make(map[ledger.Key]bool),
		queued:  make(map[peer.ID]bool),
		streams: make(streamSet),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			r.Close()
		}
	}()

	// A message is named by its content: the same block announced by its
	// owner and by its counterparty is one message, delivered once.
	byContent := pubsub.WithTopicMessageIdFn(func(m *pb.Message) string {
		sum := sha256.Sum256(m.Data)
		return string(sum[:])
	})
	if err := ps.RegisterTopicValidator(BlockTopic(network), r.validateBlock, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("replicate: block validator: %w", err)
	}
	r.blockTopicVal = true
	if err := ps.RegisterTopicValidator(FraudTopic(network), r.validateProof, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("replicate: fraud validator: %w", err)
	}
	r.fraudTopicVal = true
	if r.blocks, err = ps.Join(BlockTopic(network), byContent); err != nil {
		return nil, fmt.Errorf("replicate: join %s: %w", BlockTopic(network), err)
	}
	if r.fraud, err = ps.Join(FraudTopic(network), byContent); err != nil {
		return nil, fmt.Errorf("replicate: join %s: %w", FraudTopic(network), err)
	}
	if r.blockSub, err = r.blocks.Subscribe(pubsub.WithBufferSize(cfg.gossipBuffer)); err != nil {
		return nil, fmt.Errorf("replicate: subscribe: %w", err)
	}
	if r.fraudSub, err = r.fraud.Subscribe(pubsub.WithBufferSize(64)); err != nil {
		return nil, fmt.Errorf("replicate: subscribe: %w", err)
	}
	if r.events, err = h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated),
	}); err != nil {
		return nil, fmt.Errorf("replicate: events: %w", err)
	}
	h.SetStreamHandler(ProtocolID, r.serve)

	r.wg.Add(3 + cfg.syncWorkers)
	go r.blockLoop()
	go r.fraudLoop()
	go r.eventLoop()
	for range cfg.syncWorkers {
		go r.syncWorker()
	}
	if cfg.aeInterval > 0 && cfg.aeFanout > 0 {
		r.wg.Add(1)
		go r.antiEntropyLoop()
	}
	// Peers connected before New never announce themselves again.
	for _, p := range r.protocolPeers() {
		r.enqueuePeer(p)
	}
	r.log.Debug("replicate started", "network", network, "topic", BlockTopic(network))
	return r, nil
}

// Close stops replicating: it stops answering, resets the requests being
// answered, leaves the topics and waits for every goroutine. It leaves the
// store, host and router open. Closing twice is a no-op.
func (r *Replicator) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Replicator) close() error {
	r.mu.Lock()
	r.closed = true
	streams := make([]network.Stream, 0, len(r.streams))
	for s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()
	r.h.RemoveStreamHandler(ProtocolID)
	for _, s := range streams {
		s.Reset()
	}
	var errs []error
	if r.blockTopicVal {
		errs = append(errs, r.ps.UnregisterTopicValidator(BlockTopic(r.network)))
	}
	if r.fraudTopicVal {
		errs = append(errs, r.ps.UnregisterTopicValidator(FraudTopic(r.network)))
	}
	// Cancel returns once the router has taken the cancellation, so the
	// topics can be closed after it.
	if r.blockSub != nil {
		r.blockSub.Cancel()
	}
	if r.fraudSub != nil {
		r.fraudSub.Cancel()
	}
	r.cancel()
	if r.events != nil {
		errs = append(errs, r.events.Close())
	}
	r.wg.Wait()
	for _, t := range []*pubsub.Topic{r.blocks, r.fraud} {
		if t != nil {
			errs = append(errs, t.Close())
		}
	}
	// A router closed before the Replicator has nothing left to leave.
	errs = slices.DeleteFunc(errs, func(err error) bool { return errors.Is(err, context.Canceled) })
	return errors.Join(errs...)
}

func (r *Replicator) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Publish announces a block on the network's topic: the node's own new blocks
// after store.Append, and a counterparty's half it received directly after
// storing it, so every node learns them without waiting for a pull. A block
// every node already has is dropped by GossipSub (messages are named by their
// content) or by the nodes' validators.
func (r *Replicator) Publish(ctx context.Context, b *ledger.Block) error {
	if r.isClosed() {
		return ErrClosed
	}
	if err := r.blocks.Publish(ctx, b.Encode()); err != nil {
		return fmt.Errorf("replicate: publish block %d of %s: %w", b.Seq, b.Owner, err)
	}
	return nil
}

// PublishFraudProof spreads a fork so that every node freezes its owner. The
// Replicator publishes the forks it finds itself; a node calls this when its
// own store.Add of a block it received directly reports ledger.ErrFork.
func (r *Replicator) PublishFraudProof(ctx context.Context, p *ledger.FraudProof) error {
	if r.isClosed() {
		return ErrClosed
	}
	if err := p.Verify(); err != nil {
		return err
	}
	if err := r.fraud.Publish(ctx, p.Encode()); err != nil {
		return fmt.Errorf("replicate: publish fraud proof of %s: %w", p.Owner(), err)
	}
	return nil
}

// Stats counts what the Replicator did since New: what dashboards and tests
// read to see replication work (or be attacked) without reading logs.
type Stats struct {
	// Gossiped and Pulled count the blocks stored from gossip and from pulls.
	Gossiped, Pulled uint64
	// Duplicates counts blocks the store already had.
	Duplicates uint64
	// Gaps counts gossiped blocks that arrived before the blocks before them.
	Gaps uint64
	// Refused counts blocks the store refused (broken links, bad time, ...).
	Refused uint64
	// Rejected counts gossip messages the validators rejected: not a block or
	// proof, or badly signed. GossipSub does not relay them.
	Rejected uint64
	// Forks counts forks this node found; Proofs fraud proofs it learnt from
	// others for owners it had not frozen.
	Forks, Proofs uint64
	// Pulls counts pulls of one chain from one peer; PullErrors those that
	// failed (the peer was unreachable, busy, behind, or faulty).
	Pulls, PullErrors uint64
	// Served counts sync requests answered; BadRequests those refused as
	// malformed; Busy those turned away at the limit.
	Served, BadRequests, Busy uint64
}

type stats struct {
	gossiped, pulled, duplicates, gaps, refused, rejected atomic.Uint64
	forks, proofs, pulls, pullErrors                      atomic.Uint64
	served, badRequests, busy                             atomic.Uint64
}

// Stats returns the counters so far.
func (r *Replicator) Stats() Stats {
	s := &r.stats
	return Stats{
		Gossiped: s.gossiped.Load(), Pulled: s.pulled.Load(), Duplicates: s.duplicates.Load(),
		Gaps: s.gaps.Load(), Refused: s.refused.Load(), Rejected: s.rejected.Load(),
		Forks: s.forks.Load(), Proofs: s.proofs.Load(), Pulls: s.pulls.Load(), PullErrors: s.pullErrors.Load(),
		Served: s.served.Load(), BadRequests: s.badRequests.Load(), Busy: s.busy.Load(),
	}
}
