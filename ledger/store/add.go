package store

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// maxConflictRetries bounds how often a block's transaction is retried when a
// concurrent block of another chain touched the same cross-chain keys.
const maxConflictRetries = 16

// errDuplicate ends a transaction for a block the store already has.
var errDuplicate = errors.New("store: duplicate block")

// Add stores a block of any chain, this node's or another's, once it has
// checked it: the canonical encoding, the owner's signature, the sequence
// right after the stored head and the link to it, and the ledger's rules. The
// block, its indexes and every balance it changes are written in one Badger
// transaction, synced to disk before Add returns: a nil error means the block
// survives a crash.
//
// A block the store already has is accepted again as a no-op, so replication
// may deliver twice. A block past the head is refused with the ledger's gap
// error (the replicator fetches the missing ones first). A different block for
// a position the store already has is a fork: the store records the fraud
// proof, freezes the owner and returns the ledger's fork error; afterwards
// every block of that owner is refused with ErrFrozen.
func (s *Store) Add(b *ledger.Block) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.done()
	if s.cfg.readOnly {
		return ErrReadOnly
	}
	enc := b.Encode()
	nb, err := ledger.DecodeBlock(enc)
	if err != nil {
		return err
	}
	// Signatures are the expensive check: outside the owner's lock, so blocks
	// of one chain arriving together verify in parallel.
	if err := nb.VerifySignature(); err != nil {
		return err
	}
	mu := s.ownerLock(nb.Owner)
	mu.Lock()
	defer mu.Unlock()
	return s.commit(nb, enc)
}

// Append makes, signs and stores the next block of priv's own chain: the
// node's way to write its half of a receipt. Reading the head, linking to it
// and storing the block happen under the chain's lock, so concurrent Appends
// to one chain line up instead of forking it. The block's time is the store's
// clock, never earlier than the previous block's.
func (s *Store) Append(priv ed25519.PrivateKey, kind ledger.Kind, body []byte) (*ledger.Block, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	if s.cfg.readOnly {
		return nil, ErrReadOnly
	}
	var owner ledger.Key
	copy(owner[:], priv.Public().(ed25519.PublicKey))
	mu := s.ownerLock(owner)
	mu.Lock()
	defer mu.Unlock()

	b := &ledger.Block{Seq: 1, Kind: kind, Time: s.cfg.now().UnixMilli(), Body: body}
	err := s.db.View(func(txn *badger.Txn) error {
		h, err := getHead(txn, owner)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		prev, err := readBlock(txn, owner, h.Seq)
		if err != nil {
			return &BlockError{Owner: owner, Seq: h.Seq, ID: h.ID, Err: err}
		}
		b.Seq, b.Prev, b.Time = h.Seq+1, h.ID, max(b.Time, prev.Time)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.Sign(priv)
	enc := b.Encode()
	nb, err := ledger.DecodeBlock(enc)
	if err != nil {
		return nil, err
	}
	if err := s.commit(nb, enc); err != nil {
		return nil, err
	}
	return nb, nil
}

// commit checks b against the stored chain and writes it with everything it
// changes, in one transaction. The caller holds b's owner lock and has
// verified the signature.
func (s *Store) commit(b *ledger.Block, enc []byte) error {
	id := ledger.BlockID(sha256.Sum256(enc))
	for attempt := 0; ; attempt++ {
		var forked *FraudProof
		err := s.db.Update(func(txn *badger.Txn) error {
			forked = nil
			if _, err := txn.Get(frozenKey(b.Owner)); err == nil {
				return fmt.Errorf("%w: %s", ErrFrozen, b.Owner)
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			head, err := getHead(txn, b.Owner)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			switch {
			case b.Seq <= head.Seq:
				stored, err := readBlock(txn, b.Owner, b.Seq)
				if err != nil {
					return &BlockError{Owner: b.Owner, Seq: b.Seq, Err: err}
				}
				if stored.ID() == id {
					return errDuplicate
				}
				forked = &FraudProof{A: stored, B: b}
				return recordFork(txn, forked)
			case b.Seq > head.Seq+1:
				return fmt.Errorf("%w: block %d of %s, have %d", errGap, b.Seq, b.Owner, head.Seq)
			case b.Prev != head.ID:
				return fmt.Errorf("%w: block %d of %s", errBrokenLink, b.Seq, b.Owner)
			}
			return writeBlock(txn, b, enc, id)
		})
		switch {
		case errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries:
			continue
		case errors.Is(err, errDuplicate):
			return nil
		case err != nil:
			return err
		case forked != nil:
			s.log.Warn("store fork recorded, owner frozen", "owner", b.Owner, "seq", b.Seq)
			return fmt.Errorf("%w: two blocks %d of %s", errFork, b.Seq, b.Owner)
		}
		return nil
	}
}

// writeBlock writes an accepted block and its index entries.
func writeBlock(txn *badger.Txn, b *ledger.Block, enc []byte, id ledger.BlockID) error {
	sets := [][2][]byte{
		{blockKey(b.Owner, b.Seq), enc},
		{idKey(id), blockRef(b.Owner, b.Seq)},
		{headKey(b.Owner), encodeHead(Head{Seq: b.Seq, ID: id})},
		{historyKey(b.Owner, b.Time, b.Owner, b.Seq), nil},
	}
	for _, kv := range sets {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// getHead reads owner's head, ErrNotFound for a chain the store has not seen.
func getHead(txn *badger.Txn, owner ledger.Key) (Head, error) {
	item, err := txn.Get(headKey(owner))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Head{}, ErrNotFound
	}
	if err != nil {
		return Head{}, err
	}
	var h Head
	err = item.Value(func(v []byte) error {
		h, err = decodeHead(v)
		return err
	})
	return h, err
}
