package ledger

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// The bodies of the two trust records. Like the receipts' bodies, each has one
// canonical encoding: fixed-width little-endian integers in field order, the
// length-prefixed byte strings where shown, nothing after.
//
//	hardware := u8 tier u32 multiplier fingerprint[32]
//	            u64 matmul_mflops u64 bandwidth_mbps u64 layer_micros
//	            u8 backend_len backend[backend_len]            (70 bytes + backend)
//	audit    := subject[32] session[16] u16 hop
//	            u8 model_len model[model_len] (a CIDv1 raw sha2-256, as in an earn)
//	            u16 first u16 last u32 position u8 check u8 verdict  (111 bytes with a 36-byte CID)
//
// The hardware body is node/hardware's Claim, field for field; the audit body is
// pipeline/verify's Result. The ledger imports neither (it is pure, and
// node/hardware imports it): node/ledger.go converts.
const (
	// MaxBackend bounds a hardware claim's backend name.
	MaxBackend    = 32
	hardwareFixed = 1 + 4 + 32 + 8*3 + 1
	auditFixed    = 32 + 16 + 2 + 1 + 2*2 + 4 + 1 + 1
)

// The checks an audit records, and their verdicts (pipeline/verify's values).
const (
	// CheckRecompute: another node recomputed the hop and compared activations.
	CheckRecompute uint8 = 1
	// CheckCanary: a known-answer prompt.
	CheckCanary uint8 = 2
	// VerdictPass and VerdictFail are an audit's outcomes.
	VerdictPass uint8 = 1
	VerdictFail uint8 = 2
)

// Hardware is the body of a KindHardware block: a node's hardware claim (node/
// hardware.Claim's first seven fields) on its own chain, so every node knows the
// multiplier it may earn at and since when (the quarantine rule, doc.go).
type Hardware struct {
	// Tier is the claim's position in the genesis tier table, 0 for the first.
	Tier uint8
	// Multiplier is the claimed hardware multiplier in milli.
	Multiplier uint32
	// Fingerprint identifies the device that measured the figures.
	Fingerprint [32]byte
	// MatmulMFLOPS, BandwidthMBps and LayerMicros are the benchmark's figures:
	// what the implied multiplier compares clients' observations with.
	MatmulMFLOPS, BandwidthMBps, LayerMicros uint64
	// Backend names the compute backend measured (at most MaxBackend bytes).
	Backend string
}

// Audit is the body of a KindAudit block: the signed result of one check of
// another node's hop (pipeline/verify.Result), on the auditor's chain. The
// subject's reliability factor follows from the audits of it (doc.go).
type Audit struct {
	// Subject is the node judged; never the auditor itself.
	Subject Key
	// Session and Hop name the hop judged.
	Session [16]byte
	Hop     uint16
	// Model is the binary CID of the model's manifest, spelt as in an Earn.
	Model []byte
	// First and Last are the layers the hop was to compute, [First, Last).
	First, Last uint16
	// Position is the first position found wrong for a failure, the last one
	// checked for a pass.
	Position uint32
	// Check is CheckRecompute or CheckCanary; Verdict VerdictPass or VerdictFail.
	Check, Verdict uint8
}

// Encode returns the canonical body. The claim must be well formed.
func (h *Hardware) Encode() []byte {
	out := make([]byte, 0, hardwareFixed+len(h.Backend))
	out = append(out, h.Tier)
	out = binary.LittleEndian.AppendUint32(out, h.Multiplier)
	out = append(out, h.Fingerprint[:]...)
	for _, v := range []uint64{h.MatmulMFLOPS, h.BandwidthMBps, h.LayerMicros} {
		out = binary.LittleEndian.AppendUint64(out, v)
	}
	out = append(out, byte(len(h.Backend)))
	return append(out, h.Backend...)
}

// DecodeHardware parses a canonical hardware body and checks that it is well
// formed: a tier of the table's size, a multiplier, figures, a backend name.
func DecodeHardware(p []byte) (*Hardware, error) {
	if len(p) < hardwareFixed || len(p) > hardwareFixed+MaxBackend {
		return nil, fmt.Errorf("%w: hardware body of %d bytes", ErrMalformed, len(p))
	}
	h := &Hardware{Tier: p[0], Multiplier: binary.LittleEndian.Uint32(p[1:])}
	off := 5 + copy(h.Fingerprint[:], p[5:])
	for _, v := range []*uint64{&h.MatmulMFLOPS, &h.BandwidthMBps, &h.LayerMicros} {
		*v = binary.LittleEndian.Uint64(p[off:])
		off += 8
	}
	n := int(p[off])
	off++
	if len(p) != off+n {
		return nil, fmt.Errorf("%w: hardware body of %d bytes with a %d-byte backend", ErrMalformed, len(p), n)
	}
	h.Backend = string(p[off:])
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hardware) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: hardware: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case int(h.Tier) >= NumTiers:
		return bad("tier %d of %d", h.Tier, NumTiers)
	case h.Multiplier == 0:
		return bad("multiplier 0")
	case h.MatmulMFLOPS == 0 || h.BandwidthMBps == 0 || h.LayerMicros == 0:
		return bad("figures %d MFLOP/s, %d MB/s, %d µs", h.MatmulMFLOPS, h.BandwidthMBps, h.LayerMicros)
	case h.Backend == "" || len(h.Backend) > MaxBackend || !utf8.ValidString(h.Backend):
		return bad("backend %q", h.Backend)
	}
	return nil
}

// Encode returns the canonical body. The audit must be well formed.
func (a *Audit) Encode() []byte {
	out := make([]byte, 0, auditFixed+len(a.Model))
	out = append(out, a.Subject[:]...)
	out = append(out, a.Session[:]...)
	out = binary.LittleEndian.AppendUint16(out, a.Hop)
	out = append(out, byte(len(a.Model)))
	out = append(out, a.Model...)
	out = binary.LittleEndian.AppendUint16(out, a.First)
	out = binary.LittleEndian.AppendUint16(out, a.Last)
	out = binary.LittleEndian.AppendUint32(out, a.Position)
	return append(out, a.Check, a.Verdict)
}

// DecodeAudit parses a canonical audit body and checks that it is well formed:
// a model spelt as an Earn spells it, a non-empty layer range, a known check
// and verdict.
func DecodeAudit(p []byte) (*Audit, error) {
	if len(p) < auditFixed || len(p) > auditFixed+MaxModelCID {
		return nil, fmt.Errorf("%w: audit body of %d bytes", ErrMalformed, len(p))
	}
	a := &Audit{}
	off := copy(a.Subject[:], p)
	off += copy(a.Session[:], p[off:])
	a.Hop = binary.LittleEndian.Uint16(p[off:])
	off += 2
	n := int(p[off])
	off++
	if len(p) != auditFixed+n {
		return nil, fmt.Errorf("%w: audit body of %d bytes with a %d-byte model", ErrMalformed, len(p), n)
	}
	a.Model = append([]byte(nil), p[off:off+n]...)
	off += n
	a.First = binary.LittleEndian.Uint16(p[off:])
	a.Last = binary.LittleEndian.Uint16(p[off+2:])
	a.Position = binary.LittleEndian.Uint32(p[off+4:])
	a.Check, a.Verdict = p[off+8], p[off+9]
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Audit) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: audit: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if err := checkModel(a.Model); err != nil {
		return bad("%v", err)
	}
	switch {
	case a.First >= a.Last:
		return bad("empty layer range [%d, %d)", a.First, a.Last)
	case a.Check != CheckRecompute && a.Check != CheckCanary:
		return bad("check %d", a.Check)
	case a.Verdict != VerdictPass && a.Verdict != VerdictFail:
		return bad("verdict %d", a.Verdict)
	}
	return nil
}

// Passed reports whether the audit's verdict is a pass.
func (a *Audit) Passed() bool { return a.Verdict == VerdictPass }

// Hardware decodes the block's body as a hardware claim.
func (b *Block) Hardware() (*Hardware, error) {
	if b.Kind != KindHardware {
		return nil, fmt.Errorf("%w: block %d of %s is %s, not hardware", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	return DecodeHardware(b.Body)
}

// Audit decodes the block's body as an audit.
func (b *Block) Audit() (*Audit, error) {
	if b.Kind != KindAudit {
		return nil, fmt.Errorf("%w: block %d of %s is %s, not audit", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	return DecodeAudit(b.Body)
}

// NewHardware makes and signs a hardware claim after head on priv's chain.
func NewHardware(priv ed25519.PrivateKey, head Head, h *Hardware, now int64) (*Block, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return NewBlock(priv, head, KindHardware, h.Encode(), now)
}

// NewAudit makes and signs an audit after head on priv's chain.
func NewAudit(priv ed25519.PrivateKey, head Head, a *Audit, now int64) (*Block, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return NewBlock(priv, head, KindAudit, a.Encode(), now)
}
