package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// The bodies of the two halves of a receipt. Each has one canonical encoding:
// fixed-width little-endian integers in field order, one length-prefixed byte
// string (the model CID), nothing after. A block's Kind says which layout its body
// has, so a body carries no version of its own: a new layout is a new Kind.
//
//	earn  := client[32] session[16] u32 window
//	         u8 model_len model[model_len] (a CIDv1 raw sha2-256, as model manifests are named)
//	         u16 first u16 last u32 from u32 to u32 results u32 tokens
//	         u32 multiplier u32 reliability u16 precision
//	         u64 flops u64 amount u64 spend                      (143 bytes with a 36-byte CID)
//	spend := server[32] proposal[32] u64 seq u64 amount [u64 micros]   (80 or 88 bytes)
//
// A spend's micros, the client's observation of the hop's time, is present (and
// not 0) or absent: 80 bytes mean "not observed", so that the one encoding of
// each value holds and agreements signed before observations existed still
// decode.
//
// Decoders also reject bodies that no honest party writes (an empty layer range, a
// window without positions, more tokens than positions, factors above 1.0), so
// that everything after decoding can rely on them; rules that need the model or
// the genesis file are ValidateEarn's.
const (
	// MaxModelCID bounds the model CID in an Earn; a sha2-256 CIDv1 is 36 bytes.
	MaxModelCID = 64
	earnFixed   = 32 + 16 + 4 + 1 + 2*2 + 4*4 + 4*2 + 2 + 8*3
	spendSize   = 32 + 32 + 8 + 8
	// spendObserved is the size of a spend carrying the client's observation.
	spendObserved = spendSize + 8
)

// Earn is the body of a server's half of a receipt (KindEarn): what it did for a
// client in one settlement window of one session, and the amounts that follow from
// it by the formulas of flops.go. Every field is covered by the server's
// signature; the client countersigns by naming the block in a Spend.
type Earn struct {
	// Client is the party that pays: the one that will sign the Spend.
	Client Key
	// Session is the pipeline session the work belongs to.
	Session [16]byte
	// Window numbers the settlement windows of a session: every N generated tokens
	// and at the session's end. A server's windows of one (client, session) strictly
	// increase along its chain, which is what makes a replayed proposal detectable
	// without remembering every receipt.
	Window uint32
	// Model is the binary CID of the model's manifest.
	Model []byte
	// First and Last are the layers served, [First, Last).
	First, Last uint16
	// From and To are the positions processed in this window, [From, To).
	From, To uint32
	// Results counts the positions whose output logits this stage computed: only
	// the last stage (Last = the model's layer count) computes any.
	Results uint32
	// Tokens counts the tokens the client generated in this window: what it pays for.
	Tokens uint32
	// Multiplier and Reliability are the server's hardware multiplier and
	// reliability factor in milli (1000 = 1.0), as the chains give them
	// (State.Multiplier, State.Reliability): the receipt credits at most these,
	// and less when the trust rules say so (doc.go, "Trust").
	Multiplier, Reliability uint32
	// Precision is the precision factor of the server's weights for these layers,
	// in milli (see PrecisionOf).
	Precision uint16
	// FLOPs is the work delivered (FLOPsDelivered); validators recompute it.
	FLOPs uint64
	// Amount is what the server earns, in milli-GFT (T_earned).
	Amount uint64
	// Spend is what the client spends for this hop and window, in milli-GFT (T_spent).
	Spend uint64
}

// Spend is the body of a client's half of a receipt (KindSpend): its agreement to
// exactly one proposal, named by the server, the block's ID and its sequence, and
// the amount it accepts to spend.
type Spend struct {
	Server   Key
	Proposal BlockID
	// Seq is the proposal's sequence in the server's chain: with it a validator
	// that has not yet seen the proposal knows where it will be.
	Seq uint64
	// Amount is the proposal's Spend, in milli-GFT.
	Amount uint64
	// Micros is the wall-clock time, in microseconds, the client attributes to
	// this hop for the window (its share of the chain's time from sending each
	// forward to its result), 0 when the client did not observe it. The implied
	// multiplier (doc.go) compares it with what the server's claimed hardware
	// would take for the work.
	Micros uint64
}

// modelPrefix is how model manifests are named (model.Manifest.CID): the only
// spelling of a model an Earn accepts, so that one model has one encoding.
func modelPrefix() cid.Prefix {
	return cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: 32}
}

// Encode returns the canonical body. The Earn must be well formed (NewEarn checks).
func (e *Earn) Encode() []byte {
	out := make([]byte, 0, earnFixed+len(e.Model))
	out = append(out, e.Client[:]...)
	out = append(out, e.Session[:]...)
	out = binary.LittleEndian.AppendUint32(out, e.Window)
	out = append(out, byte(len(e.Model)))
	out = append(out, e.Model...)
	out = binary.LittleEndian.AppendUint16(out, e.First)
	out = binary.LittleEndian.AppendUint16(out, e.Last)
	for _, v := range []uint32{e.From, e.To, e.Results, e.Tokens, e.Multiplier, e.Reliability} {
		out = binary.LittleEndian.AppendUint32(out, v)
	}
	out = binary.LittleEndian.AppendUint16(out, e.Precision)
	for _, v := range []uint64{e.FLOPs, e.Amount, e.Spend} {
		out = binary.LittleEndian.AppendUint64(out, v)
	}
	return out
}

// DecodeEarn parses a canonical Earn body and checks that it is well formed (see
// the layout above).
func DecodeEarn(p []byte) (*Earn, error) {
	if len(p) < earnFixed || len(p) > earnFixed+MaxModelCID {
		return nil, fmt.Errorf("%w: earn body of %d bytes", ErrMalformed, len(p))
	}
	e := &Earn{}
	off := copy(e.Client[:], p)
	off += copy(e.Session[:], p[off:])
	e.Window = binary.LittleEndian.Uint32(p[off:])
	off += 4
	n := int(p[off])
	off++
	if len(p) != earnFixed+n {
		return nil, fmt.Errorf("%w: earn body of %d bytes with a %d-byte model", ErrMalformed, len(p), n)
	}
	e.Model = append([]byte(nil), p[off:off+n]...)
	off += n
	e.First = binary.LittleEndian.Uint16(p[off:])
	e.Last = binary.LittleEndian.Uint16(p[off+2:])
	off += 4
	for _, v := range []*uint32{&e.From, &e.To, &e.Results, &e.Tokens, &e.Multiplier, &e.Reliability} {
		*v = binary.LittleEndian.Uint32(p[off:])
		off += 4
	}
	e.Precision = binary.LittleEndian.Uint16(p[off:])
	off += 2
	for _, v := range []*uint64{&e.FLOPs, &e.Amount, &e.Spend} {
		*v = binary.LittleEndian.Uint64(p[off:])
		off += 8
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// check holds the rules of a well-formed Earn that need neither the model nor the
// genesis file.
func (e *Earn) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: earn: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if err := checkModel(e.Model); err != nil {
		return bad("%v", err)
	}
	positions := uint64(e.To) - uint64(e.From)
	switch {
	case e.First >= e.Last:
		return bad("empty layer range [%d, %d)", e.First, e.Last)
	case e.From >= e.To:
		return bad("empty position range [%d, %d)", e.From, e.To)
	case uint64(e.Results) > positions:
		return bad("%d results from %d positions", e.Results, positions)
	case uint64(e.Tokens) > positions:
		return bad("%d tokens from %d positions", e.Tokens, positions)
	case e.Multiplier == 0:
		return bad("multiplier 0")
	case e.Reliability > 1000:
		return bad("reliability %d above 1000", e.Reliability)
	case e.Precision == 0 || e.Precision > 1000:
		return bad("precision %d out of (0, 1000]", e.Precision)
	}
	return nil
}

// checkModel checks a model's spelling: a CIDv1 raw sha2-256 of at most
// MaxModelCID bytes, as model manifests are named, so one model has one
// encoding in every body that names it.
func checkModel(m []byte) error {
	if len(m) > MaxModelCID {
		return fmt.Errorf("model CID of %d bytes", len(m))
	}
	c, err := cid.Cast(m)
	if err != nil {
		return fmt.Errorf("model: %v", err)
	}
	if c.Prefix() != modelPrefix() || string(c.Bytes()) != string(m) {
		return fmt.Errorf("model %s is not a CIDv1 raw sha2-256", c)
	}
	return nil
}

// ModelCID returns the model as a CID.
func (e *Earn) ModelCID() (cid.Cid, error) {
	c, err := cid.Cast(e.Model)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: earn model: %v", ErrMalformed, err)
	}
	return c, nil
}

// Encode returns the canonical body.
func (s *Spend) Encode() []byte {
	out := make([]byte, 0, spendObserved)
	out = append(out, s.Server[:]...)
	out = append(out, s.Proposal[:]...)
	out = binary.LittleEndian.AppendUint64(out, s.Seq)
	out = binary.LittleEndian.AppendUint64(out, s.Amount)
	if s.Micros != 0 {
		out = binary.LittleEndian.AppendUint64(out, s.Micros)
	}
	return out
}

// DecodeSpend parses a canonical Spend body.
func DecodeSpend(p []byte) (*Spend, error) {
	if len(p) != spendSize && len(p) != spendObserved {
		return nil, fmt.Errorf("%w: spend body of %d bytes", ErrMalformed, len(p))
	}
	s := &Spend{}
	off := copy(s.Server[:], p)
	off += copy(s.Proposal[:], p[off:])
	s.Seq = binary.LittleEndian.Uint64(p[off:])
	s.Amount = binary.LittleEndian.Uint64(p[off+8:])
	if s.Seq == 0 || s.Proposal.IsZero() {
		return nil, fmt.Errorf("%w: spend names block %d %s", ErrMalformed, s.Seq, s.Proposal)
	}
	if len(p) == spendObserved {
		if s.Micros = binary.LittleEndian.Uint64(p[off+16:]); s.Micros == 0 {
			return nil, fmt.Errorf("%w: spend observes 0 µs", ErrMalformed)
		}
	}
	return s, nil
}

// Earn decodes the block's body as an Earn.
func (b *Block) Earn() (*Earn, error) {
	if b.Kind != KindEarn {
		return nil, fmt.Errorf("%w: block %d of %s is %s, not earn", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	return DecodeEarn(b.Body)
}

// Spend decodes the block's body as a Spend.
func (b *Block) Spend() (*Spend, error) {
	if b.Kind != KindSpend {
		return nil, fmt.Errorf("%w: block %d of %s is %s, not spend", ErrMalformed, b.Seq, b.Owner, b.Kind)
	}
	return DecodeSpend(b.Body)
}
