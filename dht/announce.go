package dht

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
)

// Errors of announcing.
var (
	// ErrAnnounceIncomplete: the record is announced and will be re-announced,
	// but this round did not reach the DHT everywhere (e.g. the first node of a
	// network has no DHT peers yet). Safe to log and go on.
	ErrAnnounceIncomplete = errors.New("dht: announcement incomplete")
	// ErrNotAnnouncing: UpdateRecord without a current announcement.
	ErrNotAnnouncing = errors.New("dht: not announcing")
	// ErrModelsChanged: UpdateRecord may change load, capacity and rates, not
	// what is served; call Announce for that (the layers must be provided).
	ErrModelsChanged = errors.New("dht: served models changed; call Announce")
)

// topicPeerWait bounds how long a new announcement waits for a gossip peer
// before publishing anyway (the DHT has the record regardless).
const topicPeerWait = 2 * time.Second

// announcer is this node's current announcement and its re-announce loop.
type announcer struct {
	d      *Discovery
	states []*modelState
	cids   []cid.Cid // model and layer CIDs to provide
	update chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	tmpl Record // the caller's fields; peer, seq, expiry and signature are filled per publication
}

// Announce makes this node known as serving rec.Models: it provides each model
// CID and the CID of each served layer (layers[model][k] is the CID of layer
// First+k, from the model's manifest), stores the signed record under
// NodeKey(self) and publishes it on each model's topic. It then re-announces
// every re-announce interval with a higher sequence, until Withdraw or Close.
//
// The caller fills the served models, tier, multiplier, capacity and load; this
// node fills the peer, sequence, expiry and signature, and the host's current
// addresses when rec.Addrs is empty. A second Announce replaces the first (the
// models it no longer lists see this node leave).
//
// An error wrapping ErrAnnounceIncomplete means the announcement stands but
// this first round did not fully reach the DHT; any other error means nothing
// was announced.
func (d *Discovery) Announce(ctx context.Context, rec Record, layers map[cid.Cid][]cid.Cid) error {
	cids, err := checkAnnouncement(&rec, layers)
	if err != nil {
		return err
	}
	d.annMu.Lock()
	defer d.annMu.Unlock()
	if d.isClosed() {
		return ErrClosed
	}
	var states []*modelState
	for _, m := range rec.Models {
		st, err := d.acquire(m.Model, int(m.Layers))
		if err != nil {
			for _, st := range states {
				d.release(st)
			}
			return err
		}
		states = append(states, st)
	}
	old := d.ann
	if old != nil {
		old.stop()
	}
	actx, cancel := context.WithCancel(d.ctx)
	a := &announcer{d: d, states: states, cids: cids, tmpl: rec, update: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	d.ann = a

	errProvide := a.provide(ctx)
	for _, st := range states {
		providers := st.providers(ctx)
		st.joinMesh(ctx, providers)
		st.awaitTopicPeer(ctx, providers, topicPeerWait)
	}
	var leaving []*modelState
	if old != nil {
		for _, st := range old.states {
			if !slices.Contains(states, st) {
				leaving = append(leaving, st)
			}
		}
	}
	_, errPublish := a.publish(ctx, false, leaving)
	if old != nil {
		for _, st := range old.states {
			d.release(st)
		}
	}
	d.wg.Go(func() { a.loop(actx) })
	d.log.Info("announced", "models", len(rec.Models), "provided", len(cids))
	if err := errors.Join(errProvide, errPublish); err != nil {
		return fmt.Errorf("%w: %w", ErrAnnounceIncomplete, err)
	}
	return nil
}

// checkAnnouncement validates the caller's record and layer CIDs and returns
// every CID to provide.
func checkAnnouncement(rec *Record, layers map[cid.Cid][]cid.Cid) ([]cid.Cid, error) {
	if len(rec.Models) == 0 || rec.Withdrawn {
		return nil, fmt.Errorf("%w: an announcement serves at least one model", ErrMalformed)
	}
	probe := *rec
	probe.Peer, probe.Expires = "x", 1 // filled per publication
	if err := probe.check(); err != nil {
		return nil, err
	}
	if len(layers) != len(rec.Models) {
		return nil, fmt.Errorf("%w: layer CIDs for %d models, %d served", ErrMalformed, len(layers), len(rec.Models))
	}
	var cids []cid.Cid
	for _, m := range rec.Models {
		ls, ok := layers[m.Model]
		if !ok || len(ls) != m.Span() {
			return nil, fmt.Errorf("%w: %d layer CIDs for layers [%d, %d) of %v", ErrMalformed, len(ls), m.First, m.Last, m.Model)
		}
		cids = append(cids, m.Model)
		for _, c := range ls {
			if !c.Defined() {
				return nil, fmt.Errorf("%w: undefined layer CID of %v", ErrMalformed, m.Model)
			}
			cids = append(cids, c)
		}
	}
	return cids, nil
}

// UpdateRecord changes the announced load, capacity, rates or addresses and
// republishes soon: updates coalesce, at most one publication per minimum
// update interval. update must not change which models and layers are served.
func (d *Discovery) UpdateRecord(update func(r *Record)) error {
	d.annMu.Lock()
	a := d.ann
	d.annMu.Unlock()
	if a == nil {
		return ErrNotAnnouncing
	}
	a.mu.Lock()
	r := a.tmpl
	r.Models = slices.Clone(r.Models)
	r.Addrs = slices.Clone(r.Addrs)
	update(&r)
	err := sameServing(a.tmpl.Models, r.Models)
	if err == nil {
		probe := r
		probe.Peer, probe.Expires, probe.Withdrawn = "x", 1, false
		err = probe.check()
	}
	if err == nil {
		r.Withdrawn = false
		a.tmpl = r
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case a.update <- struct{}{}:
	default:
	}
	return nil
}

func sameServing(a, b []ServedModel) error {
	if len(a) != len(b) {
		return ErrModelsChanged
	}
	for i := range a {
		if !a[i].Model.Equals(b[i].Model) || a[i].Layers != b[i].Layers || a[i].First != b[i].First || a[i].Last != b[i].Last {
			return ErrModelsChanged
		}
	}
	return nil
}

// Withdraw announces that this node leaves: it stops re-announcing and
// publishes a withdrawn record (DHT and gossip), which removes it from every
// view that receives it. Provider records cannot be retracted; they lapse, and
// watchers ignore providers without a live record meanwhile.
func (d *Discovery) Withdraw(ctx context.Context) error {
	d.annMu.Lock()
	defer d.annMu.Unlock()
	a := d.ann
	if a == nil {
		return nil
	}
	a.stop()
	d.ann = nil
	_, err := a.publish(ctx, true, nil)
	for _, st := range a.states {
		d.release(st)
	}
	d.log.Info("withdrawn")
	if err != nil {
		return fmt.Errorf("dht: withdraw: %w", err)
	}
	return nil
}

// stop ends the re-announce loop and waits for it. Every holder of d.annMu
// that sees an announcer sees it with its loop started.
func (a *announcer) stop() {
	a.cancel()
	<-a.done
}

// loop re-announces before expiry, publishes coalesced updates and renews the
// provider records.
func (a *announcer) loop(ctx context.Context) {
	defer close(a.done)
	d := a.d
	reannounce := time.NewTicker(d.cfg.reannounce)
	defer reannounce.Stop()
	pending := time.NewTimer(0)
	if !pending.Stop() {
		<-pending.C
	}
	lastPublish, lastProvide := d.cfg.now(), d.cfg.now()
	publish := func() {
		if _, err := a.publish(ctx, false, nil); err != nil && ctx.Err() == nil {
			d.log.Warn("re-announce incomplete", "err", err)
		}
		lastPublish = d.cfg.now()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reannounce.C:
			publish()
			if d.since(lastProvide) >= d.cfg.reprovide {
				if err := a.provide(ctx); err != nil && ctx.Err() == nil {
					d.log.Warn("reprovide incomplete", "err", err)
				}
				lastProvide = d.cfg.now()
			}
		case <-a.update:
			if wait := d.cfg.minUpdate - d.since(lastPublish); wait > 0 {
				pending.Reset(wait)
				continue
			}
			publish()
		case <-pending.C:
			publish()
		}
	}
}

// publish signs the current template with a fresh sequence and expiry and
// sends it everywhere: into this node's own views, the DHT and the topics of
// the served models and of extra (models just left).
func (a *announcer) publish(ctx context.Context, withdrawn bool, extra []*modelState) (*Record, error) {
	d := a.d
	a.mu.Lock()
	r := a.tmpl
	a.mu.Unlock()
	r.Peer = d.h.ID()
	if len(r.Addrs) == 0 {
		r.Addrs = hostAddrs(d.h.Addrs())
	}
	r.Withdrawn = withdrawn
	r.Seq = d.nextSeq()
	r.Expires = d.expiry()
	if err := r.Sign(d.key); err != nil {
		return nil, err
	}
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	states := append(slices.Clone(a.states), extra...)
	for _, st := range states {
		st.take(&r, "self")
	}

	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		pctx, cancel := d.timeout(ctx)
		defer cancel()
		if err := d.dht.PutValue(pctx, NodeKey(r.Peer), b); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("dht: put record: %w", err))
			mu.Unlock()
		}
	})
	for _, st := range states {
		if st.topic == nil {
			continue
		}
		wg.Go(func() {
			pctx, cancel := d.timeout(ctx)
			defer cancel()
			if err := st.topic.Publish(pctx, b); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("dht: publish on %s: %w", st.topic, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d.log.Debug("record published", "seq", r.Seq, "expires", r.Expires, "withdrawn", withdrawn, "errs", len(errs))
	return &r, errors.Join(errs...)
}

// provide announces this node as a provider of every model and layer CID.
func (a *announcer) provide(ctx context.Context) error {
	d := a.d
	work := make(chan cid.Cid)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range min(4, len(a.cids)) {
		wg.Go(func() {
			for c := range work {
				pctx, cancel := d.timeout(ctx)
				err := d.dht.Provide(pctx, c, true)
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("dht: provide %v: %w", c, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, c := range a.cids {
		work <- c
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		// One error per CID says the same thing; keep the first and the count.
		return fmt.Errorf("%w (%d of %d CIDs)", errs[0], len(errs), len(a.cids))
	}
	return nil
}

// hostAddrs keeps the host addresses a record can carry.
func hostAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if n := len(a.Bytes()); n > 0 && n <= MaxAddrLen && len(out) < MaxAddrs {
			out = append(out, a)
		}
	}
	return out
}
