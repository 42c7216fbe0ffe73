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
	tHead    byte = 'h' // 'h' ‖ owner → seq ‖ id
	tHistory byte = 't' // 't' ‖ party ‖ time ‖ owner ‖ seq → ∅
	tPeer    byte = 'c' // 'c' ‖ party ‖ counterparty ‖ time ‖ owner ‖ seq → ∅
	tPending byte = 'p' // 'p' ‖ client ‖ earn owner ‖ earn seq → ∅
	tAccount byte = 'a' // 'a' ‖ owner → account
	tFraud   byte = 'f' // 'f' ‖ owner ‖ seq → fraud proof
	tFrozen  byte = 'z' // 'z' ‖ owner → seq of the first fork
)

// storeVersion is the format of the keys and values below; Open refuses a
// store of another version rather than misreading it.
const storeVersion = 1

var versionKey = []byte{tMeta, 'v', 'e', 'r', 's', 'i', 'o', 'n'}

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

func encodeHead(h Head) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+idLen), h.Seq)
	return append(v, h.ID[:]...)
}

func decodeHead(v []byte) (Head, error) {
	var h Head
	if len(v) != 8+idLen {
		return h, fmt.Errorf("%w: head of %d bytes", ErrCorrupt, len(v))
	}
	h.Seq = binary.BigEndian.Uint64(v)
	copy(h.ID[:], v[8:])
	if h.Seq == 0 {
		return h, fmt.Errorf("%w: head at sequence 0", ErrCorrupt)
	}
	return h, nil
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
