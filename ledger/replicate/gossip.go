package replicate

import (
	"context"
	"errors"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
)

// validateBlock decides whether a gossiped block is relayed: only cheap
// checks, so a flood costs little. Undecodable and badly signed blocks are
// rejected (never relayed); a block this node already has is ignored (its
// other copies reach the others without it). Whether the block follows its
// chain is the store's to decide, on delivery: a block after a gap must still
// travel, or one lost message would stop a chain's gossip.
func (r *Replicator) validateBlock(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == r.h.ID() {
		return pubsub.ValidationAccept // the node's own announcement of a stored block
	}
	b, err := ledger.DecodeBlock(msg.Data)
	if err != nil {
		return r.reject(from, err)
	}
	if r.have(b) {
		return pubsub.ValidationIgnore
	}
	if err := b.VerifySignature(); err != nil {
		return r.reject(from, err)
	}
	msg.ValidatorData = b
	return pubsub.ValidationAccept
}

// reject counts and logs a message the validators refuse to relay.
func (r *Replicator) reject(from peer.ID, err error) pubsub.ValidationResult {
	r.stats.rejected.Add(1)
	r.log.Debug("replicate gossip rejected", "peer", from, "err", err)
	return pubsub.ValidationReject
}

// have reports whether the store holds exactly b.
func (r *Replicator) have(b *ledger.Block) bool {
	head, err := r.st.Head(b.Owner)
	if err != nil || b.Seq > head.Seq {
		return false
	}
	if b.Seq == head.Seq {
		return head.ID == b.ID()
	}
	stored, err := r.st.Get(b.Owner, b.Seq)
	return err == nil && stored.ID() == b.ID()
}

// validateProof decides whether a gossiped fraud proof is relayed: it must be
// a fork (two valid signatures), and is ignored when its owner is frozen here
// already (the others learn it from whoever froze them, or from their pulls).
func (r *Replicator) validateProof(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == r.h.ID() {
		return pubsub.ValidationAccept
	}
	p, err := ledger.DecodeFraudProof(msg.Data)
	if err != nil {
		return r.reject(from, err)
	}
	if frozen, err := r.st.Frozen(p.Owner()); err != nil || frozen {
		return pubsub.ValidationIgnore
	}
	if err := p.Verify(); err != nil {
		return r.reject(from, err)
	}
	msg.ValidatorData = p
	return pubsub.ValidationAccept
}

// blockLoop stores the blocks delivered on the block topic, in the order they
// arrive, until the subscription ends.
func (r *Replicator) blockLoop() {
	defer r.wg.Done()
	for {
		msg, err := r.blockSub.Next(r.ctx)
		if err != nil {
			return
		}
		if msg.Local {
			continue // the node's own block, already stored
		}
		b, ok := msg.ValidatorData.(*ledger.Block)
		if !ok {
			continue
		}
		r.accept(b, FromGossip, senders(msg)...)
	}
}

// senders are the peers that surely had a delivered message: the one that
// relayed it and the one that published it.
func senders(msg *pubsub.Message) []peer.ID {
	out := []peer.ID{msg.ReceivedFrom}
	if from := msg.GetFrom(); from != "" && from != msg.ReceivedFrom {
		out = append(out, from)
	}
	return out
}

// fraudLoop freezes the owners of delivered fraud proofs.
func (r *Replicator) fraudLoop() {
	defer r.wg.Done()
	for {
		msg, err := r.fraudSub.Next(r.ctx)
		if err != nil {
			return
		}
		if msg.Local {
			continue
		}
		if p, ok := msg.ValidatorData.(*ledger.FraudProof); ok {
			r.learnProof(p, FromGossip, msg.ReceivedFrom)
		}
	}
}

// learnProof stores a fraud proof from another node, freezing its owner.
func (r *Replicator) learnProof(p *ledger.FraudProof, src Source, from peer.ID) {
	owner := p.Owner()
	frozen, err := r.st.Frozen(owner)
	if err != nil || frozen {
		return
	}
	if err := r.st.AddFraudProof(p); err != nil {
		r.log.Warn("replicate fraud proof not stored", "owner", owner, "peer", from, "err", err)
		return
	}
	r.stats.proofs.Add(1)
	r.dropHeld(owner)
	r.log.Info("replicate owner frozen by a fraud proof", "owner", owner, "seq", p.A.Seq, "peer", from, "source", src)
	if r.cfg.onFraud != nil {
		r.cfg.onFraud(p, src)
	}
}

// outcome is what became of a block handed to the store.
type outcome uint8

const (
	added     outcome = iota
	duplicate         // the store had it
	gap               // blocks before it are missing
	forked            // another block holds its position: its owner is frozen
	refused           // it breaks a chain rule
	stopped           // the store is closed or failed
)

// accept hands b to the store and acts on the answer: a gap is held and
// pulled from hints (the peers that had b) and others, a fork becomes a fraud
// proof spread to every node. When b is stored, the held blocks after it
// follow.
func (r *Replicator) accept(b *ledger.Block, src Source, hints ...peer.ID) outcome {
	out := r.add(b, src, hints)
	if out != added {
		return out
	}
	for prev := b; ; {
		next := r.takeHeld(prev.Owner, prev.Seq)
		if next == nil {
			return out
		}
		if o := r.add(next, FromGossip, hints); o != added && o != duplicate {
			return out
		}
		prev = next
	}
}

func (r *Replicator) add(b *ledger.Block, src Source, hints []peer.ID) outcome {
	err := r.st.Add(b)
	switch {
	case err == nil:
		if src == FromGossip {
			r.stats.gossiped.Add(1)
		} else {
			r.stats.pulled.Add(1)
		}
		if r.cfg.onBlock != nil {
			r.cfg.onBlock(b, src)
		}
		return added
	case errors.Is(err, ledger.ErrDuplicate):
		r.stats.duplicates.Add(1)
		return duplicate
	case errors.Is(err, ledger.ErrGap):
		if src == FromGossip {
			r.stats.gaps.Add(1)
			r.hold(b)
			r.want(b.Owner, want{upTo: b.Seq, gap: true, hints: hints}, r.cfg.gapDelay)
		}
		return gap
	case errors.Is(err, ledger.ErrFork):
		r.forked(b, src)
		return forked
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrFailed), errors.Is(err, store.ErrReadOnly):
		return stopped
	case errors.Is(err, ledger.ErrBrokenLink):
		// The block after our head links elsewhere: its owner's chain
		// diverged at or before our head. Pulling from our head on brings
		// the other branch's block there, which the store turns into a
		// fraud proof.
		if src == FromGossip {
			if head, herr := r.st.Head(b.Owner); herr == nil && b.Seq == head.Seq+1 {
				r.want(b.Owner, want{upTo: b.Seq, hints: hints}, 0)
			}
		}
	}
	r.stats.refused.Add(1)
	r.log.Debug("replicate block refused", "owner", b.Owner, "seq", b.Seq, "source", src, "err", err)
	return refused
}

// forked handles a block the store found to fork its chain: the store has
// recorded the proof and frozen the owner; every other node must hear of it.
func (r *Replicator) forked(b *ledger.Block, src Source) {
	var p *ledger.FraudProof
	if stored, err := r.st.Get(b.Owner, b.Seq); err == nil {
		p, _ = ledger.DetectFork(stored, b)
	}
	if p == nil {
		p = r.storedProof(b.Owner)
	}
	if p == nil {
		r.log.Error("replicate fork without a proof", "owner", b.Owner, "seq", b.Seq)
		return
	}
	// The store froze the owner when it found the fork; recording the
	// proof again is idempotent and keeps this correct should a store only
	// report forks.
	if err := r.st.AddFraudProof(p); err != nil {
		r.log.Warn("replicate fraud proof not stored", "owner", b.Owner, "err", err)
	}
	r.stats.forks.Add(1)
	r.dropHeld(b.Owner)
	r.log.Warn("replicate fork found, owner frozen", "owner", b.Owner, "seq", b.Seq, "source", src)
	if r.cfg.onFraud != nil {
		r.cfg.onFraud(p, src)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.requestTimeout)
	defer cancel()
	if err := r.fraud.Publish(ctx, p.Encode()); err != nil && !r.isClosed() {
		r.log.Warn("replicate fraud proof not published", "owner", b.Owner, "err", err)
	}
}

// storedProof is a fraud proof of owner from the store, nil if none.
func (r *Replicator) storedProof(owner ledger.Key) *ledger.FraudProof {
	proofs, err := r.st.FraudProofs()
	if err != nil {
		return nil
	}
	for _, p := range proofs {
		if p.Owner() == owner {
			return p
		}
	}
	return nil
}

// hold keeps a block that arrived before the blocks it follows, if there is
// room.
func (r *Replicator) hold(b *ledger.Block) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nheld >= r.cfg.maxHeld {
		return
	}
	m := r.held[b.Owner]
	if m == nil {
		m = make(map[uint64]*ledger.Block)
		r.held[b.Owner] = m
	}
	if _, ok := m[b.Seq]; !ok {
		m[b.Seq] = b
		r.nheld++
	}
}

// takeHeld forgets the held block seq of owner (just stored) and returns the
// one after it, if held.
func (r *Replicator) takeHeld(owner ledger.Key, seq uint64) *ledger.Block {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.held[owner]
	if m == nil {
		return nil
	}
	if _, ok := m[seq]; ok {
		delete(m, seq)
		r.nheld--
	}
	next := m[seq+1]
	if next != nil {
		delete(m, seq+1)
		r.nheld--
	}
	if len(m) == 0 {
		delete(r.held, owner)
	}
	return next
}

// dropHeld forgets the held blocks of a frozen owner: its chain is split, and
// the blocks of the other branch would never follow.
func (r *Replicator) dropHeld(owner ledger.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nheld -= len(r.held[owner])
	delete(r.held, owner)
}
