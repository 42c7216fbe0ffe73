package store

import (
	"bytes"
	"testing"

	"github.com/imece/imece/ledger"
)

// FuzzStoredValues feeds arbitrary bytes to every decoder of stored keys and
// values: a damaged store must give errors, never a panic, and what decodes
// must encode back to the same bytes.
func FuzzStoredValues(f *testing.F) {
	b := chain(testKey("fuzz"), nil, 2)[1]
	f.Add(b.Encode())
	f.Add(encodeHead(b.Head()))
	f.Add(blockKey(b.Owner, b.Seq))
	f.Add(encodeAccount(ledger.Balance{Earned: 5, PendingSpend: 7, Frozen: true}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		if blk, err := decodeStored(b.Owner, b.Seq, v); err == nil && !bytes.Equal(blk.Encode(), v) {
			t.Fatalf("block %x re-encodes as %x", v, blk.Encode())
		}
		if h, err := decodeHead(v); err == nil && !bytes.Equal(encodeHead(h), v) {
			t.Fatalf("head %x re-encodes as %x", v, encodeHead(h))
		}
		if a, err := decodeAccount(v); err == nil && !bytes.Equal(encodeAccount(a), v) {
			t.Fatalf("account %x re-encodes as %x", v, encodeAccount(a))
		}
		if o, q, err := parseBlockKey(v); err == nil && !bytes.Equal(blockKey(o, q), v) {
			t.Fatalf("block key %x re-encodes as %x", v, blockKey(o, q))
		}
		if o, q, err := parseBlockRef(v); err == nil && !bytes.Equal(blockRef(o, q), v) {
			t.Fatalf("block ref %x re-encodes as %x", v, blockRef(o, q))
		}
	})
}
