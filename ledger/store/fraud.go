package store

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// FraudProof is two different blocks signed by one owner for one position.
type FraudProof struct{ A, B *ledger.Block }

func encodeProof(p *FraudProof) []byte {
	a, b := p.A.Encode(), p.B.Encode()
	v := binary.BigEndian.AppendUint32(nil, uint32(len(a)))
	v = append(v, a...)
	return append(v, b...)
}

func decodeProof(v []byte) (*FraudProof, error) {
	if len(v) < 4 || int(binary.BigEndian.Uint32(v)) > len(v)-4 {
		return nil, fmt.Errorf("%w: fraud proof of %d bytes", ErrCorrupt, len(v))
	}
	n := binary.BigEndian.Uint32(v)
	a, err := ledger.DecodeBlock(v[4 : 4+n])
	if err != nil {
		return nil, fmt.Errorf("%w: fraud proof: %w", ErrCorrupt, err)
	}
	b, err := ledger.DecodeBlock(v[4+n:])
	if err != nil {
		return nil, fmt.Errorf("%w: fraud proof: %w", ErrCorrupt, err)
	}
	return &FraudProof{A: a, B: b}, nil
}

// recordFork stores the proof and freezes its owner, in the transaction that
// found it.
func recordFork(txn *badger.Txn, p *FraudProof) error {
	if err := txn.Set(fraudKey(p.A.Owner, p.A.Seq), encodeProof(p)); err != nil {
		return err
	}
	return txn.Set(frozenKey(p.A.Owner), binary.BigEndian.AppendUint64(nil, p.A.Seq))
}
