package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// Add stores a block of any chain, this node's or another's, once the ledger
// accepts it: its encoding, its owner's signature, the sequence right after
// the stored head, the link to it and the chain rules (ledger.State.Apply).
// The block, its indexes and every balance it changes (the receipts it
// settles or voids) are written in one Badger transaction, synced to disk
// before Add returns: a nil error means the block survives a crash.
//
// Errors are the ledger's, wrapped:
//   - ledger.ErrDuplicate: the store already has this block. Replication
//     delivers blocks more than once; treat it as success, without
//     re-announcing the block.
//   - ledger.ErrGap: the block is past the head; the replicator fetches the
//     missing ones first.
//   - ledger.ErrFork: a different block for a position the store already has.
//     The store has recorded the fraud proof (FraudProofs) and frozen the owner
//     in the same transaction; the block itself is not stored.
//   - any other chain-rule error (ErrBrokenLink, ErrTime, ErrBadSignature,
//     ErrMalformed, ErrSelfReceipt, ErrReplay): the block is refused.
//
// A block that breaks a receipt rule (a wrong amount, an agreement to no
// proposal) is stored: its owner signed it and it is part of its chain, but
// its receipt is void and counts towards no balance.
func (s *Store) Add(b *ledger.Block) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.done()
	if s.cfg.readOnly {
		return ErrReadOnly
	}
	// Decoding the encoding applies the canonical checks and gives the store
	// its own copy, which the caller cannot change under it.
	enc := b.Encode()
	nb, err := ledger.DecodeBlock(enc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(nb, enc)
}

// Append makes, signs and stores the next block of priv's own chain: the
// node's way to write its half of a receipt (body is an encoded ledger.Earn or
// ledger.Spend). Reading the head, linking to it and storing happen under the
// store's write lock, so concurrent Appends line up instead of forking the
// chain. The block's time is the store's clock, never earlier than the
// previous block's.
func (s *Store) Append(priv ed25519.PrivateKey, kind ledger.Kind, body []byte) (*ledger.Block, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	if s.cfg.readOnly {
		return nil, ErrReadOnly
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("store: private key of %d bytes", len(priv))
	}
	var owner ledger.Key
	copy(owner[:], priv.Public().(ed25519.PublicKey))
	s.mu.Lock()
	defer s.mu.Unlock()
	head, _ := s.state.Head(owner)
	b, err := ledger.NewBlock(priv, head, kind, body, s.cfg.now().UnixMilli())
	if err != nil {
		return nil, err
	}
	if err := s.commit(b, b.Encode()); err != nil {
		return nil, err
	}
	return b, nil
}

// AddFraudProof records a fork learnt from another node (gossip) after
// verifying it: the owner is frozen here too. A proof for an owner already
// frozen is kept as well (it costs two blocks) but changes nothing.
func (s *Store) AddFraudProof(p *ledger.FraudProof) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.done()
	if s.cfg.readOnly {
		return ErrReadOnly
	}
	if err := p.Verify(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordFork(p)
}

// commit checks b against the State and the stored chain and writes it with
// everything it changes, in one transaction. The caller holds s.mu.
func (s *Store) commit(b *ledger.Block, enc []byte) error {
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	id := ledger.BlockID(sha256.Sum256(enc))
	if head, ok := s.state.Head(b.Owner); ok && b.Seq <= head.Seq {
		return s.behindHead(b, id)
	}
	res, err := s.state.Apply(b)
	if err != nil {
		return err
	}
	// From here the State has the block: if it does not reach the disk, the
	// two disagree and the store refuses writes until it is reopened (which
	// rebuilds the State from the disk).
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := s.writeBlock(txn, b, enc, id, res); err != nil {
		return s.fail(err)
	}
	if err := txn.Commit(); err != nil {
		return s.fail(err)
	}
	for _, v := range res.Void {
		s.log.Debug("store receipt void", "owner", v.Owner, "seq", v.Seq, "err", v.Err)
	}
	return nil
}

// behindHead handles a block at or behind its chain's head: the same block
// again, or a fork.
func (s *Store) behindHead(b *ledger.Block, id ledger.BlockID) error {
	var stored *ledger.Block
	err := s.db.View(func(txn *badger.Txn) (err error) {
		stored, err = readBlock(txn, b.Owner, b.Seq)
		return err
	})
	if err != nil {
		return &BlockError{Owner: b.Owner, Seq: b.Seq, Err: err}
	}
	if stored.ID() == id {
		return fmt.Errorf("%w: block %d of %s", ledger.ErrDuplicate, b.Seq, b.Owner)
	}
	if err := b.VerifySignature(); err != nil {
		return err
	}
	p, ok := ledger.DetectFork(stored, b)
	if !ok {
		return fmt.Errorf("%w: block %d of %s", ledger.ErrOutOfOrder, b.Seq, b.Owner)
	}
	if err := s.recordFork(p); err != nil {
		return err
	}
	s.log.Warn("store fork recorded, owner frozen", "owner", b.Owner, "seq", b.Seq)
	return fmt.Errorf("%w: two blocks %d of %s: %s and %s", ledger.ErrFork, b.Seq, b.Owner, p.A.ID(), p.B.ID())
}

// recordFork freezes p's owner in the State and stores the proof, the frozen
// mark and the owner's account in one transaction. The caller holds s.mu.
func (s *Store) recordFork(p *ledger.FraudProof) error {
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	if err := s.state.ApplyFraudProof(p); err != nil {
		return err
	}
	owner := p.Owner()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := txn.Set(fraudKey(owner, p.A.Seq), p.Encode()); err != nil {
		return s.fail(err)
	}
	// The frozen mark keeps the first fork's position; later proofs are kept
	// beside it.
	if _, err := txn.Get(frozenKey(owner)); errors.Is(err, badger.ErrKeyNotFound) {
		if err := txn.Set(frozenKey(owner), seqValue(p.A.Seq)); err != nil {
			return s.fail(err)
		}
	} else if err != nil {
		return s.fail(err)
	}
	if err := s.writeAccount(txn, owner); err != nil {
		return s.fail(err)
	}
	if err := txn.Commit(); err != nil {
		return s.fail(err)
	}
	return nil
}

// fail marks the store as failed after a write error that left the State
// ahead of the disk.
func (s *Store) fail(err error) error {
	s.failed = err
	s.log.Error("store write failed; reopen the store", "err", err)
	return fmt.Errorf("%w: %w", ErrFailed, err)
}

// writeBlock writes an accepted block, its index entries and what its receipt
// changed.
func (s *Store) writeBlock(txn *badger.Txn, b *ledger.Block, enc []byte, id ledger.BlockID, res ledger.Result) error {
	counterparty, err := counterpartyOf(b)
	if err != nil {
		return err // Apply decoded the body already: cannot happen
	}
	sets := [][2][]byte{
		{blockKey(b.Owner, b.Seq), enc},
		{idKey(id), blockRef(b.Owner, b.Seq)},
		{headKey(b.Owner), encodeHead(ledger.Head{Seq: b.Seq, ID: id, Time: b.Time})},
		{historyKey(b.Owner, b.Time, b.Owner, b.Seq), nil},
		{historyKey(counterparty, b.Time, b.Owner, b.Seq), nil},
		{peerKey(b.Owner, counterparty, b.Time, b.Owner, b.Seq), nil},
		{peerKey(counterparty, b.Owner, b.Time, b.Owner, b.Seq), nil},
	}
	for _, kv := range sets {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}

	return s.writeResult(txn, b, id, counterparty, res, map[ledger.Key]bool{b.Owner: true, counterparty: true})
}

// writeResult updates the pending index and the accounts after the State
// took a block (b, nil after a Revalidate) with result res. affected are the
// accounts to write besides those res names.
func (s *Store) writeResult(txn *badger.Txn, b *ledger.Block, id ledger.BlockID, counterparty ledger.Key, res ledger.Result, affected map[ledger.Key]bool) error {
	if affected == nil {
		affected = make(map[ledger.Key]bool)
	}
	// A new Earn is pending unless this very block settled or voided it; a
	// settled or void proposal is pending no more.
	done := make(map[ledger.BlockID]bool)
	for _, r := range res.Settled {
		done[r.Proposal] = true
		affected[r.Server], affected[r.Client] = true, true
	}
	for _, v := range res.Void {
		done[v.Block] = true
		affected[v.Owner] = true
	}
	if b != nil && b.Kind == ledger.KindEarn && !done[id] {
		if err := txn.Set(pendingKey(counterparty, b.Owner, b.Seq), id[:]); err != nil {
			return err
		}
	}
	for pid := range done {
		if err := deletePending(txn, b, id, counterparty, pid); err != nil {
			return err
		}
	}
	for k := range affected {
		if err := s.writeAccount(txn, k); err != nil {
			return err
		}
	}
	return nil
}

// deletePending removes proposal pid from the pending index if it is there:
// pid is b itself, or a block stored earlier.
func deletePending(txn *badger.Txn, b *ledger.Block, id ledger.BlockID, counterparty ledger.Key, pid ledger.BlockID) error {
	if b != nil && pid == id {
		if b.Kind == ledger.KindEarn {
			return txn.Delete(pendingKey(counterparty, b.Owner, b.Seq))
		}
		return nil
	}
	owner, seq, err := lookupID(txn, pid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := readBlock(txn, owner, seq)
	if err != nil {
		return err
	}
	if p.Kind != ledger.KindEarn {
		return nil
	}
	client, err := counterpartyOf(p)
	if err != nil {
		return err
	}
	return txn.Delete(pendingKey(client, owner, seq))
}

// writeAccount stores k's balance as the State has it now.
func (s *Store) writeAccount(txn *badger.Txn, k ledger.Key) error {
	return txn.Set(accountKey(k), encodeAccount(s.state.Balance(k)))
}

// counterpartyOf is the other party a block names: an Earn's client, a
// Spend's server, an audit's subject; a hardware claim names only its owner.
// The history of the party named lists the block.
func counterpartyOf(b *ledger.Block) (ledger.Key, error) {
	switch b.Kind {
	case ledger.KindHardware:
		return b.Owner, nil
	case ledger.KindAudit:
		a, err := b.Audit()
		if err != nil {
			return ledger.Key{}, err
		}
		return a.Subject, nil
	case ledger.KindEarn:
		e, err := b.Earn()
		if err != nil {
			return ledger.Key{}, err
		}
		return e.Client, nil
	case ledger.KindSpend:
		sp, err := b.Spend()
		if err != nil {
			return ledger.Key{}, err
		}
		return sp.Server, nil
	}
	return ledger.Key{}, fmt.Errorf("%w: kind %d", ledger.ErrMalformed, b.Kind)
}

// getHead reads owner's head, ErrNotFound for a chain the store has not seen.
func getHead(txn *badger.Txn, owner ledger.Key) (ledger.Head, error) {
	item, err := txn.Get(headKey(owner))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ledger.Head{}, ErrNotFound
	}
	if err != nil {
		return ledger.Head{}, err
	}
	var h ledger.Head
	err = item.Value(func(v []byte) error {
		h, err = decodeHead(v)
		return err
	})
	return h, err
}
