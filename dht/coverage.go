package dht

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxProviders bounds how many providers one refresh considers, and
// recordFetchers how many records it fetches at once.
const (
	maxProviders   = 1024
	recordFetchers = 8
	lonelyRefresh  = time.Second
)

// Coverage is a live view of who serves which layers of one model. It is kept
// current by the model's gossip topic (joins and leaves within seconds), by
// periodic DHT lookups (for what gossip missed, and for nodes that announced
// before this one watched), by record expiry and by dialling back peers whose
// connections close. Several Coverages of one model share that work.
type Coverage struct {
	st   *modelState
	once sync.Once
}

// Watch starts following model, whose layer count is totalLayers (0 when the
// caller does not know it yet: the count most records agree on is used). ctx
// bounds the setup only; the view stays current until Close, or until the
// Discovery closes. It returns at once: the first DHT lookup runs in the
// background (see Snapshot.Refreshed).
func (d *Discovery) Watch(ctx context.Context, model cid.Cid, totalLayers int) (*Coverage, error) {
	if !model.Defined() || totalLayers < 0 || totalLayers > MaxLayers {
		return nil, fmt.Errorf("%w: model %v with %d layers", ErrMalformed, model, totalLayers)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := d.acquire(model, totalLayers)
	if err != nil {
		return nil, err
	}
	return &Coverage{st: st}, nil
}

// Snapshot returns the current coverage. It is immutable and cheap.
func (c *Coverage) Snapshot() Snapshot {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.snap
}

// Changed returns a channel closed at the next change after the call.
func (c *Coverage) Changed() <-chan struct{} {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.changed
}

// WaitFor blocks until pred holds for the coverage (it is checked on every
// change) and returns that snapshot, or fails when ctx ends. A route planner
// waiting for a chain uses it with Snapshot.Covered.
func (c *Coverage) WaitFor(ctx context.Context, pred func(Snapshot) bool) (Snapshot, error) {
	for {
		c.st.mu.Lock()
		s, ch := c.st.snap, c.st.changed
		c.st.mu.Unlock()
		if pred(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s, ctx.Err()
		case <-c.st.ctx.Done():
			return s, ErrClosed
		}
	}
}

// Refresh looks the model up in the DHT now, instead of waiting for the next
// periodic lookup.
func (c *Coverage) Refresh(ctx context.Context) error {
	if c.st.ctx.Err() != nil {
		return ErrClosed
	}
	return c.st.refresh(ctx)
}

// Close stops this view; the shared work stops with the model's last view.
func (c *Coverage) Close() error {
	c.once.Do(func() { c.st.d.release(c.st) })
	return nil
}

// modelState is the shared machinery behind every Coverage of a model and
// behind this node's announcement of it: the topic, the view and its loops.
type modelState struct {
	d     *Discovery
	model cid.Cid
	refs  int // guarded by d.mu

	topic *pubsub.Topic // nil without gossip
	sub   *pubsub.Subscription

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // an earlier expiry to schedule
	check  chan peer.ID  // disconnected peers to dial back

	mu         sync.Mutex
	view       *view
	snap       Snapshot
	changed    chan struct{}
	misses     map[peer.ID]time.Time // providers without a usable record, when last asked
	rechecking map[peer.ID]bool

	rejected atomic.Int64 // gossip messages rejected as invalid, for tests and metrics
}

func (d *Discovery) startModel(model cid.Cid, layers int) (_ *modelState, err error) {
	st := &modelState{
		d:          d,
		model:      model,
		wake:       make(chan struct{}, 1),
		check:      make(chan peer.ID, 64),
		view:       newView(model, layers),
		changed:    make(chan struct{}),
		misses:     map[peer.ID]time.Time{},
		rechecking: map[peer.ID]bool{},
	}
	st.snap = st.view.snapshot()
	st.ctx, st.cancel = context.WithCancel(d.ctx)
	if d.ps != nil {
		name := ModelTopic(model)
		if err := d.ps.RegisterTopicValidator(name, st.validateGossip, pubsub.WithValidatorInline(true)); err != nil {
			st.cancel()
			return nil, fmt.Errorf("dht: register validator of %s: %w", name, err)
		}
		defer func() {
			if err != nil {
				st.cancel()
				_ = d.ps.UnregisterTopicValidator(name)
				if st.topic != nil {
					_ = st.topic.Close()
				}
			}
		}()
		if st.topic, err = d.ps.Join(name); err != nil {
			return nil, fmt.Errorf("dht: join %s: %w", name, err)
		}
		if st.sub, err = st.topic.Subscribe(); err != nil {
			return nil, fmt.Errorf("dht: subscribe %s: %w", name, err)
		}
		st.wg.Go(st.readGossip)
	}
	st.wg.Go(st.refreshLoop)
	st.wg.Go(st.maintain)
	return st, nil
}

// stop ends the loops and leaves the topic.
func (st *modelState) stop() {
	st.cancel()
	if st.sub != nil {
		st.sub.Cancel()
	}
	st.wg.Wait()
	if st.topic == nil {
		return
	}
	// Cancel is processed asynchronously: drain until the subscription is
	// really gone, or the topic refuses to close.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		if _, err := st.sub.Next(ctx); err != nil {
			break
		}
	}
	if err := st.topic.Close(); err != nil {
		st.d.log.Debug("topic not closed", "model", st.model, "err", err)
	}
	_ = st.d.ps.UnregisterTopicValidator(st.topic.String())
}

// setLayers reconciles the layer counts of several users of one model.
func (st *modelState) setLayers(layers int) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case layers == 0 || layers == st.view.layers:
	case st.view.layers == 0:
		st.view.layers = layers
		st.publishLocked()
	default:
		return fmt.Errorf("%w: %d, already watched with %d", ErrLayerMismatch, layers, st.view.layers)
	}
	return nil
}

// publishLocked makes the view's state the current snapshot and wakes waiters.
func (st *modelState) publishLocked() {
	st.snap = st.view.snapshot()
	close(st.changed)
	st.changed = make(chan struct{})
}

// validateGossip is the topic validator: it runs before a message is delivered
// or relayed, so garbage (rejected: bad encoding, bad signature, wrong model)
// is never propagated, and stale or expired records (ignored: honest but
// late) are not propagated either.
func (st *modelState) validateGossip(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	r, err := st.d.validator.Open(msg.Data)
	if err == nil {
		st.mu.Lock()
		err = st.view.admissible(r, st.d.cfg.now())
		st.mu.Unlock()
	}
	switch {
	case err == nil:
		msg.ValidatorData = r
		return pubsub.ValidationAccept
	case errors.Is(err, ErrStale), errors.Is(err, ErrExpired), errors.Is(err, ErrNotServing):
		st.d.log.Debug("gossip record ignored", "model", st.model, "from", from, "err", err)
		return pubsub.ValidationIgnore
	default:
		st.rejected.Add(1)
		st.d.log.Warn("gossip record rejected", "model", st.model, "from", from, "err", err)
		return pubsub.ValidationReject
	}
}

func (st *modelState) readGossip() {
	for {
		msg, err := st.sub.Next(st.ctx)
		if err != nil {
			return
		}
		if r, ok := msg.ValidatorData.(*Record); ok {
			st.take(r, "gossip")
		}
	}
}

// take applies a verified record to the view.
func (st *modelState) take(r *Record, source string) {
	now := st.d.cfg.now()
	st.mu.Lock()
	changed, err := st.view.apply(r, now)
	if changed {
		st.publishLocked()
	}
	st.mu.Unlock()
	if err != nil {
		st.d.log.Debug("record not taken", "model", st.model, "source", source, "peer", r.Peer, "err", err)
		return
	}
	if !changed {
		return
	}
	st.d.log.Debug("coverage changed", "model", st.model, "source", source, "peer", r.Peer,
		"seq", r.Seq, "withdrawn", r.Withdrawn)
	if _, serving := r.Serving(st.model); serving {
		if r.Peer != st.d.h.ID() {
			st.d.h.Peerstore().AddAddrs(r.Peer, r.Addrs, r.ExpiresAt().Sub(now))
		}
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

// suspect queues a disconnected peer for a dial-back if the view lists it.
func (st *modelState) suspect(p peer.ID) {
	st.mu.Lock()
	listed := st.view.has(p) && !st.rechecking[p]
	if listed {
		st.rechecking[p] = true
	}
	st.mu.Unlock()
	if !listed {
		return
	}
	select {
	case st.check <- p:
	default: // too many at once: expiry will catch the rest
		st.mu.Lock()
		delete(st.rechecking, p)
		st.mu.Unlock()
	}
}

// maintain expires records on time and dials back disconnected peers.
func (st *modelState) maintain() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		st.mu.Lock()
		changed, next := st.view.expire(st.d.cfg.now(), st.d.cfg.clockSkew)
		if changed {
			st.publishLocked()
		}
		st.mu.Unlock()
		if changed {
			st.d.log.Info("records expired", "model", st.model)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(st.d.cfg.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-st.ctx.Done():
			return
		case <-timer.C:
		case <-st.wake:
		case p := <-st.check:
			st.wg.Go(func() { st.recheck(p) })
		}
	}
}

// recheck dials a peer whose connections closed. A peer that cannot be reached
// leaves the view now rather than at its record's expiry; a newer record (its
// next re-announcement) brings it back.
func (st *modelState) recheck(p peer.ID) {
	defer func() {
		st.mu.Lock()
		delete(st.rechecking, p)
		st.mu.Unlock()
	}()
	st.mu.Lock()
	r := st.view.records[p]
	st.mu.Unlock()
	if r == nil || st.d.h.Network().Connectedness(p) == network.Connected {
		return
	}
	ctx, cancel := context.WithTimeout(st.ctx, st.d.cfg.recheckTimeout)
	defer cancel()
	err := st.d.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: r.Addrs})
	if err == nil || st.ctx.Err() != nil {
		return
	}
	st.mu.Lock()
	dropped := st.view.drop(p)
	if dropped {
		st.publishLocked()
	}
	st.mu.Unlock()
	if dropped {
		st.d.log.Info("unreachable peer dropped", "model", st.model, "peer", p, "err", err)
	}
}

// refreshLoop looks the model up at once, then every refresh interval; while
// the node has no gossip peer on the topic (it watched before anyone announced)
// it looks again after 1 s, doubling up to the interval, since until it finds
// a provider no gossip can reach it.
func (st *modelState) refreshLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	lonely := lonelyRefresh
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		if err := st.refresh(st.ctx); err != nil && st.ctx.Err() == nil {
			st.d.log.Warn("coverage refresh failed", "model", st.model, "err", err)
		}
		next := st.d.cfg.refresh
		if st.topic != nil && len(st.topic.ListPeers()) == 0 {
			next = min(next, lonely)
			lonely = min(2*lonely, st.d.cfg.refresh)
		} else {
			lonely = lonelyRefresh
		}
		t.Reset(next)
	}
}

// refresh looks the model up in the DHT: its providers, then the record of
// each provider (with gossip, only those we hold no live record for). It also connects to a few
// providers, which is how this node finds the model's gossip mesh.
func (st *modelState) refresh(ctx context.Context) error {
	ctx, cancel := st.d.timeout(ctx)
	defer cancel()
	providers := st.providers(ctx)
	st.joinMesh(ctx, providers)

	var todo []peer.ID
	st.mu.Lock()
	for p, miss := range st.misses {
		if st.d.since(miss) >= st.d.cfg.ttl {
			delete(st.misses, p)
		}
	}
	for _, ai := range providers {
		if _, ok := st.misses[ai.ID]; ok {
			continue
		}
		// Gossip keeps known records current; without it, the DHT is the only
		// way to see their updates and withdrawals.
		if st.topic != nil && st.view.has(ai.ID) {
			continue
		}
		todo = append(todo, ai.ID)
	}
	st.mu.Unlock()

	work := make(chan peer.ID)
	var wg sync.WaitGroup
	for range min(recordFetchers, len(todo)) {
		wg.Go(func() {
			for p := range work {
				st.fetch(ctx, p)
			}
		})
	}
	for _, p := range todo {
		work <- p
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dht: refresh %s: %w", st.model, err)
	}
	st.mu.Lock()
	st.view.refreshed = st.d.cfg.now()
	st.view.version++
	st.publishLocked()
	st.mu.Unlock()
	st.d.log.Debug("coverage refreshed", "model", st.model, "providers", len(providers), "fetched", len(todo))
	return nil
}

// providers lists the model's providers other than this node.
func (st *modelState) providers(ctx context.Context) []peer.AddrInfo {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []peer.AddrInfo
	ch := st.d.dht.FindProvidersAsync(ctx, st.model, 0)
	for ai := range ch {
		if ai.ID == st.d.h.ID() {
			continue
		}
		out = append(out, ai)
		if len(out) == maxProviders {
			cancel()
			for range ch { // the lookup stops on cancel; let it close the channel
			}
		}
	}
	return out
}

// fetch gets p's record from the DHT and takes it if it serves the model.
func (st *modelState) fetch(ctx context.Context, p peer.ID) {
	b, err := st.d.dht.GetValue(ctx, NodeKey(p))
	var r *Record
	if err == nil {
		r, err = st.d.validator.Open(b)
	}
	if err == nil {
		st.take(r, "dht")
		if _, ok := r.Serving(st.model); ok {
			return
		}
		err = ErrNotServing
	}
	st.mu.Lock()
	st.misses[p] = st.d.cfg.now()
	st.mu.Unlock()
	st.d.log.Debug("provider without usable record", "model", st.model, "provider", p, "err", err)
}

// joinMesh connects to up to topicPeers providers so that this node's gossip
// router meets the model's topic: GossipSub itself finds no peers.
func (st *modelState) joinMesh(ctx context.Context, providers []peer.AddrInfo) {
	if st.topic == nil || len(providers) == 0 {
		return
	}
	want := st.d.cfg.topicPeers - len(st.topic.ListPeers())
	if want <= 0 {
		return
	}
	var candidates []peer.AddrInfo
	for _, ai := range providers {
		if st.d.h.Network().Connectedness(ai.ID) != network.Connected {
			candidates = append(candidates, ai)
		}
	}
	rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	var wg sync.WaitGroup
	for _, ai := range candidates[:min(want, len(candidates))] {
		wg.Go(func() {
			if err := st.d.h.Connect(ctx, ai); err != nil {
				st.d.log.Debug("provider unreachable", "model", st.model, "provider", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// awaitTopicPeer waits, up to limit, until the topic has a peer when there
// are providers to meet, so that the first publication of a new announcement
// reaches someone.
func (st *modelState) awaitTopicPeer(ctx context.Context, providers []peer.AddrInfo, limit time.Duration) {
	if st.topic == nil || len(providers) == 0 || len(st.topic.ListPeers()) > 0 {
		return // alone, or already in touch
	}
	events, err := st.topic.EventHandler()
	if err != nil {
		return
	}
	defer events.Cancel()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for len(st.topic.ListPeers()) == 0 {
		if _, err := events.NextPeerEvent(ctx); err != nil {
			return
		}
	}
}
