package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// view runs fn in a read transaction of an open store.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	if err := s.use(); err != nil {
		return err
	}
	defer s.done()
	return s.db.View(fn)
}

// Head returns the tip of owner's chain, ErrNotFound if the store has none of
// its blocks.
func (s *Store) Head(owner ledger.Key) (ledger.Head, error) {
	var h ledger.Head
	err := s.view(func(txn *badger.Txn) (err error) {
		h, err = getHead(txn, owner)
		return err
	})
	return h, err
}

// Get returns block seq of owner's chain, ErrNotFound if the store does not
// have it.
func (s *Store) Get(owner ledger.Key, seq uint64) (*ledger.Block, error) {
	var b *ledger.Block
	err := s.view(func(txn *badger.Txn) (err error) {
		b, err = readBlock(txn, owner, seq)
		return err
	})
	return b, err
}

// ByID returns the block with this ID: how a Spend finds the Earn it agrees
// to, and how a peer asks for a block it heard of by gossip.
func (s *Store) ByID(id ledger.BlockID) (*ledger.Block, error) {
	var b *ledger.Block
	err := s.view(func(txn *badger.Txn) error {
		owner, seq, err := lookupID(txn, id)
		if err != nil {
			return err
		}
		b, err = readBlock(txn, owner, seq)
		if err != nil {
			return &BlockError{Owner: owner, Seq: seq, ID: id, Err: fmt.Errorf("indexed block: %w", err)}
		}
		if b.ID() != id {
			return &BlockError{Owner: owner, Seq: seq, ID: id, Err: fmt.Errorf("%w: ID index points to another block", ErrCorrupt)}
		}
		return nil
	})
	return b, err
}

// Range returns up to n consecutive blocks of owner's chain from seq from on
// (n is capped at MaxRange): what the sync protocol sends a peer that is
// behind. It returns fewer, or none, when the chain ends sooner.
func (s *Store) Range(owner ledger.Key, from uint64, n int) ([]*ledger.Block, error) {
	n = min(n, MaxRange)
	if n <= 0 {
		return nil, nil
	}
	from = max(from, 1)
	var out []*ledger.Block
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(n, 100), Prefix: chainPrefix(owner)})
		defer it.Close()
		want := from
		for it.Seek(blockKey(owner, from)); it.Valid() && len(out) < n; it.Next() {
			b, err := itemBlock(it.Item())
			if err != nil {
				return err
			}
			if b.Seq != want {
				return &BlockError{Owner: owner, Seq: want, Err: fmt.Errorf("%w: missing before the head", ErrCorrupt)}
			}
			out = append(out, b)
			want++
		}
		return nil
	})
	return out, err
}

// Heads returns the tip of every chain in the store: what anti-entropy
// compares with a peer's to find who is behind on which chain.
func (s *Store) Heads() (map[ledger.Key]ledger.Head, error) {
	heads := make(map[ledger.Key]ledger.Head)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tHead}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var owner ledger.Key
			if len(it.Item().Key()) != 1+keyLen {
				return fmt.Errorf("%w: head key of %d bytes", ErrCorrupt, len(it.Item().Key()))
			}
			copy(owner[:], it.Item().Key()[1:])
			if err := it.Item().Value(func(v []byte) error {
				h, err := decodeHead(v)
				heads[owner] = h
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return heads, err
}

// FraudProofs returns every fork the store has recorded, by owner and
// sequence: what a node gossips so others freeze the same owners.
func (s *Store) FraudProofs() ([]*ledger.FraudProof, error) {
	var out []*ledger.FraudProof
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{tFraud}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			p, err := ledger.DecodeFraudProof(v)
			if err != nil {
				return fmt.Errorf("%w: fraud proof: %w", ErrCorrupt, err)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Frozen reports whether owner forked its chain, so its credits count for
// nothing on this node.
func (s *Store) Frozen(owner ledger.Key) (bool, error) {
	var frozen bool
	err := s.view(func(txn *badger.Txn) error {
		_, err := txn.Get(frozenKey(owner))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		frozen = err == nil
		return err
	})
	return frozen, err
}

// Balance returns owner's credit as the chains give it: the starter
// allowance, settled earnings and spending, what is pending, and whether the
// owner is frozen. Before serving, a node compares the client's
// Available() with the estimated cost.
func (s *Store) Balance(owner ledger.Key) (ledger.Balance, error) {
	if err := s.use(); err != nil {
		return ledger.Balance{}, err
	}
	defer s.done()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Balance(owner), nil
}

// Trust is what the chains say of k's trust at time at (Unix milliseconds):
// the hardware multiplier it may propose at and its reliability factor (both
// in milli, ledger.State.Multiplier and Reliability), and whether a hardware
// change has it in quarantine. Servers propose with these, clients refuse
// proposals above them, route planners weigh nodes by them.
func (s *Store) Trust(k ledger.Key, at int64) (Trust, error) {
	if err := s.use(); err != nil {
		return Trust{}, err
	}
	defer s.done()
	s.mu.Lock()
	defer s.mu.Unlock()
	until, q := s.state.Quarantine(k, at)
	claim, claimed := s.state.HardwareClaim(k)
	return Trust{
		Multiplier: s.state.Multiplier(k, at), Reliability: s.state.Reliability(k, at),
		Quarantined: q, QuarantineUntil: until, Claim: claim, Claimed: claimed,
	}, nil
}

// Trust is a node's standing by the trust rules at one time.
type Trust struct {
	// Multiplier and Reliability are in milli.
	Multiplier, Reliability uint32
	// Quarantined is set until QuarantineUntil (Unix milliseconds).
	Quarantined     bool
	QuarantineUntil int64
	// Claim is the node's latest hardware claim, when Claimed.
	Claim   ledger.Hardware
	Claimed bool
}

// Proposals returns the proposals not yet settled where k is the server or
// the client: a server sees which clients have not agreed yet (and serves
// them no more until they do); a client sees what it has to answer.
func (s *Store) Proposals(k ledger.Key) ([]ledger.Proposal, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Proposals(k), nil
}

// Pending lists the proposals awaiting client's agreement (at most
// MaxHistory), by server and sequence, from the pending index: the receipts
// a client still owes. It reads an index, not the State, so it is cheap
// enough for every session's start.
func (s *Store) Pending(client ledger.Key) ([]*ledger.Block, error) {
	return s.indexed(prefixWith(tPending, client[:]), MaxHistory, false)
}

// Revalidate settles (or voids) the receipts whose model the store did not
// know, asking the costs given WithCosts again: call it after learning a
// model's manifest. The accounts it changes are written in one transaction.
func (s *Store) Revalidate() (ledger.Result, error) {
	if err := s.use(); err != nil {
		return ledger.Result{}, err
	}
	defer s.done()
	if s.cfg.readOnly {
		return ledger.Result{}, ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return ledger.Result{}, fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	res := s.state.Revalidate()
	if len(res.Settled) == 0 && len(res.Void) == 0 {
		return res, nil
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := s.writeResult(txn, nil, ledger.BlockID{}, ledger.Key{}, res, nil); err != nil {
		return res, s.fail(err)
	}
	if err := txn.Commit(); err != nil {
		return res, s.fail(err)
	}
	return res, nil
}
