package store

import (
	"encoding/binary"
	"fmt"

	"github.com/imece/imece/ledger"
)

// Tables: every Badger key starts with one byte naming its table; the rest is
// fixed-width and big-endian, so a prefix scan walks a chain in sequence order
// and a time index in time order. The layout is described in doc.go; change it
// only together with storeVersion.
const (
	tMeta    byte = 'm' // 'm' ‖ name → value
	tBlock   byte = 'b' // 'b' ‖ owner ‖ seq → encoded block
	tID      byte = 'i' // 'i' ‖ id → owner ‖ seq
	tHead    byte = 'h' // 'h' ‖ owner → seq ‖ id ‖ time
	tHistory byte = 't' // 't' ‖ party ‖ time ‖ owner ‖ seq → ∅
	tPeer    byte = 'c' // 'c' ‖ party ‖ counterparty ‖ time ‖ owner ‖ seq → ∅
	tPending byte = 'p' // 'p' ‖ client ‖ server ‖ seq → proposal id
	tAccount byte = 'a' // 'a' ‖ owner → account
	tFraud   byte = 'f' // 'f' ‖ owner ‖ seq → fraud proof
	tFrozen  byte = 'z' // 'z' ‖ owner → seq of the first fork
)

// storeVersion is the format of the keys and values below; Open refuses a
// store of another version rather than misreading it.
const storeVersion = 1

func versionKey() []byte { return []byte{tMeta, 'v', 'e', 'r', 's', 'i', 'o', 'n'} }

const (
	keyLen = len(ledger.Key{})
	idLen  = len(ledger.BlockID{})
	// blockRefLen is an owner and a sequence: where a block lives.
	blockRefLen = keyLen + 8
)

func blockKey(owner ledger.Key, seq uint64) []byte {
	k := make([]byte, 0, 1+blockRefLen)
	k = append(k, tBlock)
	k = append(k, owner[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// chainPrefix is the prefix of every block of owner's chain.
func chainPrefix(owner ledger.Key) []byte {
	return append([]byte{tBlock}, owner[:]...)
}

// parseBlockKey splits a tBlock key.
func parseBlockKey(k []byte) (owner ledger.Key, seq uint64, err error) {
	if len(k) != 1+blockRefLen || k[0] != tBlock {
		return owner, 0, fmt.Errorf("%w: block key of %d bytes", ErrCorrupt, len(k))
	}
	copy(owner[:], k[1:])
	return owner, binary.BigEndian.Uint64(k[1+keyLen:]), nil
}

func idKey(id ledger.BlockID) []byte { return append([]byte{tID}, id[:]...) }

func blockRef(owner ledger.Key, seq uint64) []byte {
	v := append(make([]byte, 0, blockRefLen), owner[:]...)
	return binary.BigEndian.AppendUint64(v, seq)
}

func parseBlockRef(v []byte) (owner ledger.Key, seq uint64, err error) {
	if len(v) != blockRefLen {
		return owner, 0, fmt.Errorf("%w: block reference of %d bytes", ErrCorrupt, len(v))
	}
	copy(owner[:], v)
	return owner, binary.BigEndian.Uint64(v[keyLen:]), nil
}

func headKey(owner ledger.Key) []byte { return append([]byte{tHead}, owner[:]...) }

const headLen = 8 + idLen + 8

func encodeHead(h ledger.Head) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, headLen), h.Seq)
	v = append(v, h.ID[:]...)
	return binary.BigEndian.AppendUint64(v, uint64(h.Time))
}

func decodeHead(v []byte) (ledger.Head, error) {
	var h ledger.Head
	if len(v) != headLen {
		return h, fmt.Errorf("%w: head of %d bytes", ErrCorrupt, len(v))
	}
	h.Seq = binary.BigEndian.Uint64(v)
	copy(h.ID[:], v[8:])
	h.Time = int64(binary.BigEndian.Uint64(v[8+idLen:]))
	if h.Seq == 0 {
		return h, fmt.Errorf("%w: head at sequence 0", ErrCorrupt)
	}
	return h, nil
}

func seqValue(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// An account is the State's balance of an owner without the allowance (the
// genesis has it): earned, spent, pending earn, pending spend (big-endian
// milli-GFT) and a frozen flag.
const accountLen = 4*8 + 1

func encodeAccount(b ledger.Balance) []byte {
	v := make([]byte, 0, accountLen)
	for _, x := range []uint64{b.Earned, b.Spent, b.PendingEarn, b.PendingSpend} {
		v = binary.BigEndian.AppendUint64(v, x)
	}
	if b.Frozen {
		return append(v, 1)
	}
	return append(v, 0)
}

func decodeAccount(v []byte) (ledger.Balance, error) {
	var b ledger.Balance
	if len(v) != accountLen || v[32] > 1 {
		return b, fmt.Errorf("%w: account of %d bytes", ErrCorrupt, len(v))
	}
	for i, x := range []*uint64{&b.Earned, &b.Spent, &b.PendingEarn, &b.PendingSpend} {
		*x = binary.BigEndian.Uint64(v[8*i:])
	}
	b.Frozen = v[32] == 1
	return b, nil
}

// sortableTime maps a signed Unix-millisecond time to big-endian bytes that
// sort in time order, negative times included.
func sortableTime(dst []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ms)^(1<<63))
}

// historyKey indexes block (owner, seq) under party: the owner itself, or the
// counterparty a receipt half names.
func historyKey(party ledger.Key, ms int64, owner ledger.Key, seq uint64) []byte {
	k := make([]byte, 0, 1+keyLen+8+blockRefLen)
	k = append(k, tHistory)
	k = append(k, party[:]...)
	k = sortableTime(k, ms)
	k = append(k, owner[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// refFromIndexKey reads the (owner, seq) that ends every index key.
func refFromIndexKey(k []byte) (ledger.Key, uint64, error) {
	if len(k) < blockRefLen {
		return ledger.Key{}, 0, fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
	}
	return parseBlockRef(k[len(k)-blockRefLen:])
}

func peerKey(party, counterparty ledger.Key, ms int64, owner ledger.Key, seq uint64) []byte {
	k := make([]byte, 0, 1+2*keyLen+8+blockRefLen)
	k = append(k, tPeer)
	k = append(k, party[:]...)
	k = append(k, counterparty[:]...)
	k = sortableTime(k, ms)
	k = append(k, owner[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func pendingKey(client, server ledger.Key, seq uint64) []byte {
	k := make([]byte, 0, 1+keyLen+blockRefLen)
	k = append(k, tPending)
	k = append(k, client[:]...)
	k = append(k, server[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func accountKey(owner ledger.Key) []byte { return append([]byte{tAccount}, owner[:]...) }

func fraudKey(owner ledger.Key, seq uint64) []byte {
	k := append([]byte{tFraud}, owner[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func frozenKey(owner ledger.Key) []byte { return append([]byte{tFrozen}, owner[:]...) }

// prefixWith returns table ‖ parts: a scan prefix.
func prefixWith(table byte, parts ...[]byte) []byte {
	p := []byte{table}
	for _, x := range parts {
		p = append(p, x...)
	}
	return p
}
