package dht

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Bounds of a record. They keep a record small enough to gossip and to store on
// every DHT node near its key, and they bound the work of parsing one. A record
// at every bound encodes to less than MaxRecordSize (a test checks it).
const (
	recordVersion = 1

	// MaxRecordSize is the largest encoded record any node accepts.
	MaxRecordSize = 5120
	// MaxAddrs is the number of multiaddrs a record may list.
	MaxAddrs = 16
	// MaxAddrLen is the length in bytes of one binary multiaddr.
	MaxAddrLen = 255
	// MaxModels is the number of models one node may announce at once.
	MaxModels = 8
	// MaxCIDLen is the length in bytes of a binary model CID.
	MaxCIDLen = 64
	// MaxPeerIDLen is the length in bytes of a binary peer ID.
	MaxPeerIDLen = 64
	// MaxLayers is the largest layer count of a model.
	MaxLayers = 1 << 16
	// MaxThroughput bounds the announced rate (about 10^12 layer-positions per
	// second, far beyond any machine) so that rate arithmetic cannot overflow.
	MaxThroughput = 1 << 40
	// MaxPermille is the largest load or P_grid value.
	MaxPermille = 1000

	signatureSize = 64 // Ed25519
	// maxExpires keeps expiry arithmetic (time.Unix, adding the skew) far
	// from overflow; honest records expire minutes from now anyway.
	maxExpires    = 1 << 40
	flagWithdrawn = 1 << 0
	knownFlags    = flagWithdrawn
)

// Errors a record can fail with. They are distinct so that callers (and the
// gossip validator) can tell garbage from a stale or expired but honest record.
var (
	// ErrMalformed: the bytes are not a canonical version-1 record, or a field is
	// out of range.
	ErrMalformed = errors.New("dht: malformed node record")
	// ErrTooLarge: the encoding exceeds MaxRecordSize or a list exceeds its bound.
	ErrTooLarge = errors.New("dht: node record too large")
	// ErrUnsupportedKey: the peer ID does not embed an Ed25519 public key, so the
	// record cannot certify itself.
	ErrUnsupportedKey = errors.New("dht: peer ID does not embed an Ed25519 key")
	// ErrKeyMismatch: the signing key, or the DHT key a record is stored under,
	// is not the record's peer.
	ErrKeyMismatch = errors.New("dht: key does not match the record's peer")
	// ErrUnsigned: the record carries no signature.
	ErrUnsigned = errors.New("dht: node record is not signed")
	// ErrBadSignature: the signature does not verify under the peer's key.
	ErrBadSignature = errors.New("dht: bad node record signature")
	// ErrExpired: the record's expiry has passed (beyond the clock-skew allowance).
	ErrExpired = errors.New("dht: node record expired")
	// ErrExpiryTooFar: the record claims to live longer than any node may
	// announce, which would let a dead node linger.
	ErrExpiryTooFar = errors.New("dht: node record expiry too far in the future")
)

// Activations is a set of activation encodings a node accepts on its pipeline
// stream, as a bit mask. Bits this version does not know are kept and ignored,
// so that a newer node announcing a new encoding is still accepted by older ones.
type Activations uint8

// The activation encodings of pipeline stage protocol 1.0.0.
const (
	ActivationsF32 Activations = 1 << 0
	ActivationsF16 Activations = 1 << 1
)

// ServedModel is one model a node serves and the contiguous range of its layers.
type ServedModel struct {
	// Model is the CID of the model's manifest (pipeline/model).
	Model cid.Cid
	// Layers is the model's total layer count L, so that a watcher can tell
	// whether the announced ranges cover the whole model without its manifest.
	Layers uint32
	// First and Last bound the served range [First, Last), 0 <= First < Last <= L.
	First, Last uint32
	// Throughput is the node's measured decode rate for this model in
	// layer-positions per second: how many (layer × token) evaluations of this
	// model's layers it does per second. It is per model because layer cost
	// differs between models. A node serving k layers moves Throughput/k tokens
	// per second through its whole span.
	Throughput uint64
	// Activations lists the encodings the node accepts for this model.
	Activations Activations
}

// Span is the number of layers served.
func (m ServedModel) Span() int { return int(m.Last) - int(m.First) }

// Record is a node's signed self-description: where to reach it, what it
// serves and how fast, and how long the statement holds. Records are
// self-certifying: the signer's key is embedded in its Ed25519 peer ID, so any
// node verifies one without asking anyone.
//
// A Record obtained from UnmarshalRecord, from a Snapshot or from the network is
// shared: treat it as immutable.
type Record struct {
	Peer  peer.ID
	Addrs []ma.Multiaddr
	// Models are the models served; at most MaxModels, no model twice.
	Models []ServedModel
	// Tier is the hardware tier (node/hardware), 0 when not benchmarked.
	Tier uint8
	// Multiplier is the hardware multiplier in milli-units (1000 = 1.0).
	Multiplier uint32
	// FreeSlots is how many more pipeline sessions the node accepts now.
	FreeSlots uint32
	// Load is the node's current load in permille of its capacity.
	Load uint16
	// PGrid is the grid-carbon signal in permille (0 until grid routing lands).
	PGrid uint16
	// Seq orders records of the same peer: the highest wins everywhere.
	Seq uint64
	// Expires is when the record stops being true, in Unix seconds. Records
	// live minutes: a node that stops re-announcing vanishes soon after.
	Expires int64
	// Withdrawn announces that the node is leaving: it serves nothing.
	Withdrawn bool
	// Signature is the Ed25519 signature by Peer over signatureDomain and the
	// body (everything the encoding holds before the signature).
	Signature []byte
}

// ExpiresAt is Expires as a time.
func (r *Record) ExpiresAt() time.Time { return time.Unix(r.Expires, 0) }

// Serving returns the entry for model, if the record serves it and is not
// withdrawn.
func (r *Record) Serving(model cid.Cid) (ServedModel, bool) {
	if r.Withdrawn {
		return ServedModel{}, false
	}
	for _, m := range r.Models {
		if m.Model.Equals(model) {
			return m, true
		}
	}
	return ServedModel{}, false
}

// Marshal returns the canonical encoding of a signed record (see doc.go for the
// byte layout). It fails on an unsigned or out-of-bounds record.
func (r *Record) Marshal() ([]byte, error) {
	if len(r.Signature) == 0 {
		return nil, ErrUnsigned
	}
	if len(r.Signature) != signatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(r.Signature))
	}
	b, err := r.body()
	if err != nil {
		return nil, err
	}
	b = append(b, r.Signature...)
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	return b, nil
}

// body encodes everything but the signature, checking every bound the decoder
// checks, so that whatever Marshal produces UnmarshalRecord accepts.
func (r *Record) body() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 512)
	var flags byte
	if r.Withdrawn {
		flags |= flagWithdrawn
	}
	b = append(b, recordVersion, flags, r.Tier)
	id := []byte(r.Peer)
	b = append(b, byte(len(id)))
	b = append(b, id...)
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Expires))
	b = binary.LittleEndian.AppendUint32(b, r.Multiplier)
	b = binary.LittleEndian.AppendUint32(b, r.FreeSlots)
	b = binary.LittleEndian.AppendUint16(b, r.Load)
	b = binary.LittleEndian.AppendUint16(b, r.PGrid)
	b = append(b, byte(len(r.Addrs)))
	for _, a := range r.Addrs {
		ab := a.Bytes()
		b = append(b, byte(len(ab)))
		b = append(b, ab...)
	}
	b = append(b, byte(len(r.Models)))
	for _, m := range r.Models {
		cb := m.Model.Bytes()
		b = append(b, byte(len(cb)))
		b = append(b, cb...)
		b = binary.LittleEndian.AppendUint32(b, m.Layers)
		b = binary.LittleEndian.AppendUint32(b, m.First)
		b = binary.LittleEndian.AppendUint32(b, m.Last)
		b = binary.LittleEndian.AppendUint64(b, m.Throughput)
		b = append(b, byte(m.Activations))
	}
	return b, nil
}

// check enforces the field bounds shared by encoder and decoder.
func (r *Record) check() error {
	if n := len(r.Peer); n == 0 || n > MaxPeerIDLen {
		return fmt.Errorf("%w: peer ID of %d bytes", ErrMalformed, n)
	}
	if r.Expires <= 0 || r.Expires > maxExpires {
		return fmt.Errorf("%w: expiry %d", ErrMalformed, r.Expires)
	}
	if r.Load > MaxPermille || r.PGrid > MaxPermille {
		return fmt.Errorf("%w: load %d or P_grid %d over %d permille", ErrMalformed, r.Load, r.PGrid, MaxPermille)
	}
	if len(r.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: %d addresses", ErrTooLarge, len(r.Addrs))
	}
	for _, a := range r.Addrs {
		if a == nil || len(a.Bytes()) == 0 || len(a.Bytes()) > MaxAddrLen {
			return fmt.Errorf("%w: address %v", ErrMalformed, a)
		}
	}
	if len(r.Models) > MaxModels {
		return fmt.Errorf("%w: %d models", ErrTooLarge, len(r.Models))
	}
	for i, m := range r.Models {
		if !m.Model.Defined() || m.Model.Version() != 1 || len(m.Model.Bytes()) > MaxCIDLen {
			return fmt.Errorf("%w: model CID %v", ErrMalformed, m.Model)
		}
		if m.Layers == 0 || m.Layers > MaxLayers || m.First >= m.Last || m.Last > m.Layers {
			return fmt.Errorf("%w: layers [%d, %d) of %d", ErrMalformed, m.First, m.Last, m.Layers)
		}
		if m.Throughput > MaxThroughput {
			return fmt.Errorf("%w: throughput %d", ErrMalformed, m.Throughput)
		}
		for _, o := range r.Models[:i] {
			if o.Model.Equals(m.Model) {
				return fmt.Errorf("%w: model %v listed twice", ErrMalformed, m.Model)
			}
		}
	}
	return nil
}

// UnmarshalRecord decodes a record received from the network. It accepts only
// the canonical encoding (re-encoding gives the same bytes) within the bounds;
// it does not verify the signature or the expiry (see Verify and Validator.Open).
func UnmarshalRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	d := decoder{b: b}
	r := &Record{}
	if v := d.u8(); v != recordVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	flags := d.u8()
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, flags)
	}
	r.Withdrawn = flags&flagWithdrawn != 0
	r.Tier = d.u8()
	id, err := peer.IDFromBytes(d.bytes(int(d.u8())))
	if err != nil && d.err == nil {
		return nil, fmt.Errorf("%w: peer ID: %v", ErrMalformed, err)
	}
	r.Peer = id
	r.Seq = d.u64()
	exp := d.u64()
	if exp > maxExpires {
		return nil, fmt.Errorf("%w: expiry %d", ErrMalformed, exp)
	}
	r.Expires = int64(exp)
	r.Multiplier = d.u32()
	r.FreeSlots = d.u32()
	r.Load = d.u16()
	r.PGrid = d.u16()
	if n := int(d.u8()); n > MaxAddrs {
		return nil, fmt.Errorf("%w: %d addresses", ErrTooLarge, n)
	} else if n > 0 {
		r.Addrs = make([]ma.Multiaddr, 0, n)
		for range n {
			ab := d.bytes(int(d.u8()))
			if d.err != nil {
				break
			}
			a, err := ma.NewMultiaddrBytes(ab)
			if err != nil || !bytes.Equal(a.Bytes(), ab) {
				return nil, fmt.Errorf("%w: address: %v", ErrMalformed, err)
			}
			r.Addrs = append(r.Addrs, a)
		}
	}
	if n := int(d.u8()); n > MaxModels {
		return nil, fmt.Errorf("%w: %d models", ErrTooLarge, n)
	} else if n > 0 {
		r.Models = make([]ServedModel, 0, n)
		for range n {
			cb := d.bytes(int(d.u8()))
			if d.err != nil {
				break
			}
			c, err := cid.Cast(cb)
			if err != nil || !bytes.Equal(c.Bytes(), cb) {
				return nil, fmt.Errorf("%w: model CID: %v", ErrMalformed, err)
			}
			m := ServedModel{Model: c, Layers: d.u32(), First: d.u32(), Last: d.u32(), Throughput: d.u64()}
			m.Activations = Activations(d.u8())
			r.Models = append(r.Models, m)
		}
	}
	r.Signature = d.bytes(signatureSize)
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-d.off)
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// decoder reads little-endian fields and remembers the first short read, so
// that the decoding above reads as the layout it implements.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.err = fmt.Errorf("%w: truncated at byte %d", ErrMalformed, d.off)
		return nil
	}
	s := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return s
}

func (d *decoder) u8() byte {
	if s := d.bytes(1); s != nil {
		return s[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if s := d.bytes(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if s := d.bytes(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if s := d.bytes(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// signedMessage is what the signature covers: the domain, then the body.
func signedMessage(body []byte) []byte {
	return append([]byte(signatureDomain), body...)
}

// Sign sets r.Signature with key, which must be the Ed25519 key of r.Peer. The
// caller sets every other field first; any later change invalidates the
// signature.
func (r *Record) Sign(key crypto.PrivKey) error {
	if key.Type() != pb.KeyType_Ed25519 {
		return ErrUnsupportedKey
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("dht: peer ID of signing key: %w", err)
	}
	if id != r.Peer {
		return ErrKeyMismatch
	}
	body, err := r.body()
	if err != nil {
		return err
	}
	sig, err := key.Sign(signedMessage(body))
	if err != nil {
		return fmt.Errorf("dht: sign node record: %w", err)
	}
	r.Signature = sig
	return nil
}

// Verify checks that the record is well formed and signed by the Ed25519 key
// embedded in its peer ID. It does not look at the expiry (Validator does).
func (r *Record) Verify() error {
	if len(r.Signature) == 0 {
		return ErrUnsigned
	}
	pub, err := r.Peer.ExtractPublicKey()
	if err != nil || pub.Type() != pb.KeyType_Ed25519 {
		return ErrUnsupportedKey
	}
	body, err := r.body()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(signedMessage(body), r.Signature)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}
