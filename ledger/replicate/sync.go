package replicate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

// ---- Answering: the server side of ProtocolID.

// serve answers one request on s, within the serve timeout, unless the node
// already answers as many as it allows.
func (r *Replicator) serve(s network.Stream) {
	if !r.enter(s) {
		s.Reset()
		return
	}
	defer r.leave(s)
	s.SetDeadline(time.Now().Add(r.cfg.serveTimeout))
	w := bufio.NewWriter(s)
	select {
	case r.serving <- struct{}{}:
		defer func() { <-r.serving }()
	default:
		r.stats.busy.Add(1)
		writeStatus(w, statusBusy)
		s.Close()
		return
	}
	q, err := readRequest(s)
	if err != nil {
		r.log.Debug("replicate sync request unreadable", "peer", s.Conn().RemotePeer(), "err", err)
		if errors.Is(err, ErrProtocol) {
			r.stats.badRequests.Add(1)
			writeStatus(w, statusBadRequest)
			s.Close()
			return
		}
		s.Reset()
		return
	}
	if err := r.answer(w, q); err != nil {
		r.log.Debug("replicate sync answer failed", "peer", s.Conn().RemotePeer(), "kind", q.kind, "err", err)
		s.Reset()
		return
	}
	r.stats.served.Add(1)
	s.Close()
}

// enter registers a stream being answered; false once the Replicator is
// closing.
func (r *Replicator) enter(s network.Stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.streams[s] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *Replicator) leave(s network.Stream) {
	r.mu.Lock()
	delete(r.streams, s)
	r.mu.Unlock()
	r.wg.Done()
}

// answer writes the response to q.
func (r *Replicator) answer(w *bufio.Writer, q request) error {
	switch q.kind {
	case kindHeads:
		entries, more, err := r.headsPage(q.after, q.owner, int(min(q.max, MaxHeadsPerPage)))
		if err != nil {
			writeStatus(w, statusFailed)
			return err
		}
		return writeHeads(w, entries, more)
	case kindRange:
		blocks, err := r.st.Range(q.owner, q.from, int(min(q.max, MaxRangeBlocks)))
		if err != nil {
			writeStatus(w, statusFailed)
			return err
		}
		encoded := make([][]byte, 0, len(blocks))
		total := 0
		for _, b := range blocks {
			enc := b.Encode()
			if total += len(enc); total > MaxRangeBytes {
				break
			}
			encoded = append(encoded, enc)
		}
		return writeBlocks(w, encoded)
	case kindProof:
		p := r.storedProof(q.owner)
		if p == nil {
			return writeStatus(w, statusNotFound)
		}
		return writeProof(w, p)
	}
	return writeStatus(w, statusBadRequest) // decodeRequest admits no other kind
}

// headsPage lists, in owner order, every chain the store has and every owner
// it holds a fraud proof of, after cursor when after is set, at most limit;
// more says whether any follow.
func (r *Replicator) headsPage(after bool, cursor ledger.Key, limit int) ([]headEntry, bool, error) {
	heads, err := r.st.Heads()
	if err != nil {
		return nil, false, err
	}
	proofs, err := r.st.FraudProofs()
	if err != nil {
		return nil, false, err
	}
	byOwner := make(map[ledger.Key]headEntry, len(heads)+len(proofs))
	for k, h := range heads {
		byOwner[k] = headEntry{owner: k, seq: h.Seq, id: h.ID}
	}
	for _, p := range proofs {
		e := byOwner[p.Owner()]
		e.owner, e.frozen = p.Owner(), true
		byOwner[p.Owner()] = e
	}
	entries := make([]headEntry, 0, len(byOwner))
	for k, e := range byOwner {
		if !after || bytes.Compare(k[:], cursor[:]) > 0 {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b headEntry) int { return bytes.Compare(a.owner[:], b.owner[:]) })
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}

// ---- Asking: the client side of ProtocolID.

// roundTrip sends q to p on a new stream and reads the answer with read,
// within the request timeout; Close cancels it.
func (r *Replicator) roundTrip(ctx context.Context, p peer.ID, q request, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.requestTimeout)
	defer cancel()
	// Sync follows connections, it does not make them: a peer that left
	// fails at once and the next one is asked.
	s, err := r.h.NewStream(network.WithNoDial(ctx, "ledger sync"), p, ProtocolID)
	if err != nil {
		return err
	}
	// Reads and writes on a stream do not watch a context: a reset does.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if _, err := s.Write(q.encode()); err != nil {
		s.Reset()
		return err
	}
	s.CloseWrite()
	if err := read(bufio.NewReader(s)); err != nil {
		s.Reset()
		if ctx.Err() != nil && !errors.Is(err, ErrProtocol) {
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return err
	}
	return s.Close()
}

// fetchHeads asks p for a page of its heads.
func (r *Replicator) fetchHeads(ctx context.Context, p peer.ID, after bool, cursor ledger.Key) (entries []headEntry, more bool, err error) {
	q := request{kind: kindHeads, after: after, owner: cursor, max: uint32(r.cfg.headsBatch)}
	err = r.roundTrip(ctx, p, q, func(rd io.Reader) (err error) {
		entries, more, err = readHeads(rd, r.cfg.headsBatch)
		return err
	})
	if err == nil && after && len(entries) > 0 && bytes.Compare(entries[0].owner[:], cursor[:]) <= 0 {
		err = fmt.Errorf("%w: heads page starts at or before its cursor", ErrProtocol)
	}
	return entries, more, err
}

// fetchRange asks p for up to n blocks of owner's chain from seq from on.
func (r *Replicator) fetchRange(ctx context.Context, p peer.ID, owner ledger.Key, from uint64, n int) (blocks []*ledger.Block, err error) {
	q := request{kind: kindRange, owner: owner, from: from, max: uint32(n)}
	err = r.roundTrip(ctx, p, q, func(rd io.Reader) (err error) {
		blocks, err = readBlocks(rd, owner, from, n)
		return err
	})
	return blocks, err
}

// fetchProof asks p for its fraud proof of owner.
func (r *Replicator) fetchProof(ctx context.Context, p peer.ID, owner ledger.Key) (proof *ledger.FraudProof, err error) {
	q := request{kind: kindProof, owner: owner}
	err = r.roundTrip(ctx, p, q, func(rd io.Reader) (err error) {
		proof, err = readProof(rd, owner)
		return err
	})
	return proof, err
}

// errForked stops a pull that found a fork: the owner is frozen and the
// peer's branch will never link to ours.
var errForked = errors.New("replicate: chain forked")

// pull brings owner's chain up to p's head (seq upTo, ID id; a zero id
// accepts any block at upTo), a range at a time, every block through the
// store. Each range starts at this node's head rather than after it, so a
// peer whose chain differs there hands over the other branch's block, and
// the store turns the pair into a fraud proof.
// It returns how many blocks it stored.
func (r *Replicator) pull(ctx context.Context, p peer.ID, owner ledger.Key, upTo uint64, id ledger.BlockID) (int, error) {
	r.stats.pulls.Add(1)
	n, err := r.pullRanges(ctx, p, owner, upTo, id)
	if err != nil && !errors.Is(err, errForked) {
		r.stats.pullErrors.Add(1)
		r.log.Debug("replicate pull failed", "peer", p, "owner", owner, "up_to", upTo, "err", err)
	}
	return n, err
}

func (r *Replicator) pullRanges(ctx context.Context, p peer.ID, owner ledger.Key, upTo uint64, id ledger.BlockID) (stored int, err error) {
	for {
		head, err := r.localHead(owner)
		if err != nil {
			return stored, err
		}
		if head.Seq > upTo || head.Seq == upTo && (id.IsZero() || head.ID == id) {
			return stored, nil
		}
		from := max(head.Seq, 1)
		n := int(min(uint64(r.cfg.rangeBatch), upTo-from+1))
		blocks, err := r.fetchRange(ctx, p, owner, from, n)
		if err != nil {
			return stored, err
		}
		if len(blocks) == 0 {
			return stored, fmt.Errorf("peer has no block %d of %s", from, owner)
		}
		for _, b := range blocks {
			switch r.accept(b, FromSync, p) {
			case added:
				stored++
			case duplicate:
			case forked:
				return stored, errForked
			case stopped:
				return stored, store.ErrClosed
			default:
				return stored, fmt.Errorf("block %d of %s from the peer not stored", b.Seq, owner)
			}
		}
		after, err := r.localHead(owner)
		if err != nil {
			return stored, err
		}
		if after.Seq == head.Seq && after.ID == head.ID {
			return stored, nil // the peer had nothing past our head
		}
	}
}

// localHead is the head of owner's chain here, the zero Head if none.
func (r *Replicator) localHead(owner ledger.Key) (ledger.Head, error) {
	h, err := r.st.Head(owner)
	if errors.Is(err, store.ErrNotFound) {
		return ledger.Head{}, nil
	}
	return h, err
}

// SyncWith runs one round of anti-entropy with p now: it compares heads and
// pulls every chain where p is ahead (or differs: a fork) and every fraud
// proof this node lacks. The Replicator does this by itself when it connects
// to a peer and periodically; a node calls it when it knows it was cut off.
func (r *Replicator) SyncWith(ctx context.Context, p peer.ID) error {
	if r.isClosed() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	return r.antiEntropy(ctx, p)
}

func (r *Replicator) antiEntropy(ctx context.Context, p peer.ID) error {
	local, err := r.st.Heads()
	if err != nil {
		return err
	}
	var cursor ledger.Key
	after, pulled, proofs := false, 0, 0
	for {
		entries, more, err := r.fetchHeads(ctx, p, after, cursor)
		if err != nil {
			return fmt.Errorf("replicate: heads of %s: %w", p, err)
		}
		for _, e := range entries {
			l := local[e.owner]
			if e.seq > l.Seq || e.seq > 0 && e.seq == l.Seq && e.id != l.ID {
				if _, err := r.pull(ctx, p, e.owner, e.seq, e.id); err == nil {
					pulled++
				}
			}
			if e.frozen {
				if frozen, err := r.st.Frozen(e.owner); err == nil && !frozen {
					proof, err := r.fetchProof(ctx, p, e.owner)
					if err != nil {
						r.log.Debug("replicate fraud proof fetch failed", "peer", p, "owner", e.owner, "err", err)
						continue
					}
					r.learnProof(proof, FromSync, p)
					proofs++
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if !more || len(entries) == 0 {
			break
		}
		after, cursor = true, entries[len(entries)-1].owner
	}
	r.log.Debug("replicate anti-entropy done", "peer", p, "chains_pulled", pulled, "proofs", proofs)
	return nil
}

// ---- Scheduling: who pulls what, when.

// want schedules a pull of owner's chain as w says, after delay. Wants of
// one chain merge: the highest sequence, the earliest time, open if either
// is, the first few hints.
func (r *Replicator) want(owner ledger.Key, w want, delay time.Duration) {
	due := r.cfg.now().Add(delay)
	r.mu.Lock()
	cur := r.wants[owner]
	if cur == nil {
		if len(r.wants) >= maxWants {
			r.mu.Unlock()
			return // anti-entropy will find it
		}
		cur = &want{due: due}
		r.wants[owner] = cur
	}
	cur.upTo = max(cur.upTo, w.upTo)
	cur.open = cur.open || w.open
	cur.gap = cur.gap || w.gap
	if due.Before(cur.due) {
		cur.due = due
	}
	for _, h := range w.hints {
		if h != "" && h != r.h.ID() && len(cur.hints) < maxHints && !slices.Contains(cur.hints, h) {
			cur.hints = append(cur.hints, h)
		}
	}
	r.mu.Unlock()
	r.signal()
}

// enqueuePeer schedules anti-entropy with p.
func (r *Replicator) enqueuePeer(p peer.ID) {
	r.mu.Lock()
	if p == r.h.ID() || r.queued[p] || len(r.peerQ) >= maxQueuedPeer {
		r.mu.Unlock()
		return
	}
	r.queued[p] = true
	r.peerQ = append(r.peerQ, p)
	r.mu.Unlock()
	r.signal()
}

func (r *Replicator) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// job is one unit of sync work: anti-entropy with a peer, or a pull of one
// chain.
type job struct {
	peer  peer.ID
	owner ledger.Key
	want  *want
}

// nextJob waits for the next job: a queued peer, or the chain whose pull is
// due first and not already running. false once the Replicator closes.
func (r *Replicator) nextJob() (job, bool) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		j, ok, wait := r.takeJob()
		pending := len(r.peerQ) > 0 || len(r.wants) > 0
		r.mu.Unlock()
		if ok {
			if pending {
				r.signal() // another worker may take the rest
			}
			return j, true
		}
		timer.Reset(wait)
		select {
		case <-r.ctx.Done():
			return job{}, false
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// takeJob takes a job if one is ready, or says how long to wait for the next
// due pull. The caller holds r.mu.
func (r *Replicator) takeJob() (job, bool, time.Duration) {
	if len(r.peerQ) > 0 {
		p := r.peerQ[0]
		r.peerQ = r.peerQ[1:]
		delete(r.queued, p)
		return job{peer: p}, true, 0
	}
	now := r.cfg.now()
	wait := time.Hour
	for k, w := range r.wants {
		if r.pulling[k] {
			continue
		}
		d := w.due.Sub(now)
		if d <= 0 {
			delete(r.wants, k)
			r.pulling[k] = true
			return job{owner: k, want: w}, true, 0
		}
		wait = min(wait, d)
	}
	return job{}, false, wait
}

// syncWorker runs jobs until Close.
func (r *Replicator) syncWorker() {
	defer r.wg.Done()
	for {
		j, ok := r.nextJob()
		if !ok {
			return
		}
		if j.want == nil {
			if err := r.antiEntropy(r.ctx, j.peer); err != nil && r.ctx.Err() == nil {
				r.log.Debug("replicate anti-entropy failed", "peer", j.peer, "err", err)
			}
			continue
		}
		r.pullWanted(j.owner, j.want)
		r.mu.Lock()
		delete(r.pulling, j.owner)
		r.mu.Unlock()
		r.signal()
	}
}

// pullWanted pulls owner's chain up to w.upTo (or, for an open want, as far
// as a peer has it) from the peers that had the block after the gap, then
// from others. A pull after a gap, and a tail pull that found blocks gossip
// had not delivered, are followed by a tail pull: the end of a burst may have
// been lost as well.
func (r *Replicator) pullWanted(owner ledger.Key, w *want) {
	before, err := r.localHead(owner)
	if err != nil {
		return
	}
	upTo := w.upTo
	if w.open {
		upTo = math.MaxUint64
	}
	pulled := 0
	if before.Seq < w.upTo || w.open {
		for i, p := range r.pullPeers(w.hints) {
			if i == maxPullPeers || r.ctx.Err() != nil {
				break
			}
			n, err := r.pull(r.ctx, p, owner, upTo, ledger.BlockID{})
			pulled += n
			if errors.Is(err, errForked) {
				return
			}
			head, herr := r.localHead(owner)
			if herr != nil {
				return
			}
			if head.Seq >= w.upTo && (err == nil || !w.open) {
				break
			}
		}
	}
	if w.gap || pulled > 0 && w.open {
		r.want(owner, want{open: true, hints: w.hints}, r.cfg.tailDelay)
	}
}

// pullPeers are the peers to pull a chain from: hints first, then the other
// connected peers that speak ProtocolID, in random order.
func (r *Replicator) pullPeers(hints []peer.ID) []peer.ID {
	peers := slices.Clone(hints)
	others := r.protocolPeers()
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for _, p := range others {
		if !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	return peers
}

// protocolPeers are the connected peers that speak ProtocolID.
func (r *Replicator) protocolPeers() []peer.ID {
	var out []peer.ID
	for _, p := range r.h.Network().Peers() {
		if p == r.h.ID() {
			continue
		}
		if ps, err := r.h.Peerstore().SupportsProtocols(p, ProtocolID); err == nil && len(ps) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// eventLoop starts anti-entropy with every peer that turns out to speak
// ProtocolID: on a new connection (identify) or when it starts speaking it.
func (r *Replicator) eventLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case ev, ok := <-r.events.Out():
			if !ok {
				return
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if slices.Contains(e.Protocols, ProtocolID) {
					r.enqueuePeer(e.Peer)
				}
			case event.EvtPeerProtocolsUpdated:
				if slices.Contains(e.Added, ProtocolID) {
					r.enqueuePeer(e.Peer)
				}
			}
		}
	}
}

// antiEntropyLoop runs a round every interval, jittered by ±25%: heads
// compared with a few random peers, so a partition heals and a missed
// fraud proof arrives even when no block is announced.
func (r *Replicator) antiEntropyLoop() {
	defer r.wg.Done()
	jitter := func() time.Duration {
		return time.Duration(float64(r.cfg.aeInterval) * (0.75 + 0.5*rand.Float64()))
	}
	timer := time.NewTimer(jitter())
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		}
		peers := r.protocolPeers()
		rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
		for _, p := range peers[:min(len(peers), r.cfg.aeFanout)] {
			r.enqueuePeer(p)
		}
		timer.Reset(jitter())
	}
}
