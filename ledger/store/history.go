package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// MaxHistory bounds one History call.
const MaxHistory = 10_000

// History returns up to limit blocks that concern party, newest first: its own
// blocks and the halves on other chains that name it (a client's agreement to
// party's proposal, a server's proposal to party). It is what `imece ledger
// history` prints; each block's Owner tells whose half it is.
func (s *Store) History(party ledger.Key, limit int) ([]*ledger.Block, error) {
	return s.indexed(prefixWith(tHistory, party[:]), limit, true)
}

// HistoryWith is History restricted to the receipts between party and
// counterparty, from either chain.
func (s *Store) HistoryWith(party, counterparty ledger.Key, limit int) ([]*ledger.Block, error) {
	return s.indexed(prefixWith(tPeer, party[:], counterparty[:]), limit, true)
}

// indexed reads up to limit blocks an index lists under prefix, in key
// order or, for histories, last key first.
func (s *Store) indexed(prefix []byte, limit int, reverse bool) ([]*ledger.Block, error) {
	limit = min(limit, MaxHistory)
	if limit <= 0 {
		return nil, nil
	}
	var out []*ledger.Block
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: reverse, Prefix: prefix})
		defer it.Close()
		start := prefix
		if reverse {
			// A reverse scan starts at the greatest key not above the seek
			// key: past every key with this prefix.
			start = append(append([]byte(nil), prefix...), 0xff)
		}
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			owner, seq, err := refFromIndexKey(it.Item().Key())
			if err != nil {
				return err
			}
			b, err := readBlock(txn, owner, seq)
			if err != nil {
				return &BlockError{Owner: owner, Seq: seq, Err: fmt.Errorf("indexed block: %w", err)}
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}
