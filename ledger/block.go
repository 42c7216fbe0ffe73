package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Key is a participant's Ed25519 public key: its identity and its wallet. A libp2p
// peer ID of an Ed25519 node embeds exactly this key; the ledger keeps to the raw
// key so it needs no networking code to check a signature.
type Key [ed25519.PublicKeySize]byte

// String is the key in hex, shortened, for logs.
func (k Key) String() string { return hex.EncodeToString(k[:6]) }

// BlockID names a block: the SHA2-256 of its encoding, signature included. The
// next block of the same chain links to it, and receipts name their other half by
// it.
type BlockID [sha256.Size]byte

// String is the ID in hex.
func (id BlockID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is the zero ID, the Prev of a chain's first block.
func (id BlockID) IsZero() bool { return id == BlockID{} }

// CID is the block's ID as a CIDv1 (raw codec, sha2-256 multihash): how blocks are
// named outside the ledger (logs, exports, the DHT).
func (id BlockID) CID() cid.Cid {
	mh, err := multihash.Encode(id[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // a 32-byte digest always encodes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// Kind says what a block records.
type Kind uint8

// The kinds of blocks. A receipt is two half-blocks on two chains: the server's
// Earn (the proposal) and the client's Spend (the agreement), each naming the
// other party. The trust records are whole blocks on one chain: a node's
// hardware claim (KindHardware) on its own, an audit of another node
// (KindAudit) on the auditor's.
const (
	KindEarn     Kind = 1
	KindSpend    Kind = 2
	KindHardware Kind = 3
	KindAudit    Kind = 4
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindEarn:
		return "earn"
	case KindSpend:
		return "spend"
	case KindHardware:
		return "hardware"
	case KindAudit:
		return "audit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Block is one entry of a participant's hash chain. Blocks are immutable once
// signed: every field is covered by the signature, and the ID by the whole.
type Block struct {
	Owner Key
	// Seq is the block's position in its owner's chain, from 1.
	Seq uint64
	// Prev is the ID of block Seq-1 of the same chain, zero for Seq 1.
	Prev BlockID
	Kind Kind
	// Time is when the owner made the block, in Unix milliseconds, by its clock.
	Time int64
	// Body is the kind's canonical body (see Earn and Spend).
	Body []byte
	Sig  [ed25519.SignatureSize]byte
}

// Encoding bounds: a block is small, and a decoder sizes nothing from an
// unchecked number.
const (
	blockVersion = 1
	// MaxBodySize bounds a block's body.
	MaxBodySize = 4096
	blockFixed  = 1 + 32 + 8 + 32 + 1 + 8 + 4 + 64
	// MaxBlockSize bounds an encoded block.
	MaxBlockSize = blockFixed + MaxBodySize
)

// blockDomain separates block signatures from every other signature a node key
// makes (node records, tickets): a signature over one can never pass as another.
const blockDomain = "imece/block/1\n"

// Errors of decoding and checking a single block.
var (
	// ErrMalformed: the bytes are not a canonical block or body.
	ErrMalformed = errors.New("ledger: malformed block")
	// ErrBadSignature: the signature does not verify under the owner's key.
	ErrBadSignature = errors.New("ledger: bad signature")
)

// body is the encoding without the signature: what the owner signs.
func (b *Block) appendUnsigned(dst []byte) []byte {
	dst = append(dst, blockVersion)
	dst = append(dst, b.Owner[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, b.Seq)
	dst = append(dst, b.Prev[:]...)
	dst = append(dst, byte(b.Kind))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Time))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b.Body)))
	return append(dst, b.Body...)
}

// Encode returns the block's canonical bytes, signature included.
func (b *Block) Encode() []byte {
	out := b.appendUnsigned(make([]byte, 0, blockFixed+len(b.Body)))
	return append(out, b.Sig[:]...)
}

// ID is the block's identifier.
func (b *Block) ID() BlockID { return sha256.Sum256(b.Encode()) }

// Sign fills Owner from priv and signs the block. priv must be the owner's key.
func (b *Block) Sign(priv ed25519.PrivateKey) {
	copy(b.Owner[:], priv.Public().(ed25519.PublicKey))
	msg := append([]byte(blockDomain), b.appendUnsigned(nil)...)
	copy(b.Sig[:], ed25519.Sign(priv, msg))
}

// VerifySignature checks the signature against the owner's key.
func (b *Block) VerifySignature() error {
	msg := append([]byte(blockDomain), b.appendUnsigned(nil)...)
	if !ed25519.Verify(b.Owner[:], msg, b.Sig[:]) {
		return fmt.Errorf("%w: block %d of %s", ErrBadSignature, b.Seq, b.Owner)
	}
	return nil
}

// DecodeBlock parses a canonical block. It checks the encoding only; call
// VerifySignature and the chain rules (Validate) before trusting it.
func DecodeBlock(p []byte) (*Block, error) {
	if len(p) < blockFixed || len(p) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(p))
	}
	if p[0] != blockVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, p[0])
	}
	b := &Block{}
	off := 1
	copy(b.Owner[:], p[off:])
	off += 32
	b.Seq = binary.LittleEndian.Uint64(p[off:])
	off += 8
	copy(b.Prev[:], p[off:])
	off += 32
	b.Kind = Kind(p[off])
	off++
	b.Time = int64(binary.LittleEndian.Uint64(p[off:]))
	off += 8
	n := int(binary.LittleEndian.Uint32(p[off:]))
	off += 4
	if n > MaxBodySize || len(p) != blockFixed+n {
		return nil, fmt.Errorf("%w: body of %d bytes in a %d-byte block", ErrMalformed, n, len(p))
	}
	b.Body = append([]byte(nil), p[off:off+n]...)
	off += n
	copy(b.Sig[:], p[off:])
	switch {
	case b.Seq == 0:
		return nil, fmt.Errorf("%w: sequence 0", ErrMalformed)
	case b.Seq == 1 && !b.Prev.IsZero():
		return nil, fmt.Errorf("%w: first block links to %s", ErrMalformed, b.Prev)
	case b.Seq > 1 && b.Prev.IsZero():
		return nil, fmt.Errorf("%w: block %d links to nothing", ErrMalformed, b.Seq)
	case b.Kind < KindEarn || b.Kind > KindAudit:
		return nil, fmt.Errorf("%w: kind %d", ErrMalformed, b.Kind)
	}
	return b, nil
}
