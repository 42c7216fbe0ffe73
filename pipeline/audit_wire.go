package pipeline

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/imece/imece/pipeline/verify"
)

// The wire format of AuditProtocol. A stream carries one request and its answer,
// each one message framed as StageProtocol frames are:
//
//	u32 length      little-endian, of everything after it
//	u8  version     AuditVersion
//	u8  type        AuditType
//	payload         by type, below; integers little-endian
//
//	EvidenceRequest  session [16] | hop u16 | from u32 | to u32
//	Evidence         session [16] | hop u16 | from u32 | rows u32 | dtype u8 | width u32 |
//	                 rows × width × (f32 | f16)
//	RecomputeRequest session [16] | hop u16 | seed u64 | first u16 | last u16 | dtype u8 |
//	                 cidLen u16 | cid | n u32 | kind u8 |
//	                 kind 0 (tokens): n × int32 | kind 1: width u32 | n × width values |
//	                 checks u32 | checks × u32 (increasing, each < n) |
//	                 witness u8 | [width u32 | checks × width values, when witness is 1,
//	                 which only kind 0 allows]
//	Recomputed       kind u8 | count u32 | count × entry
//	                 kind 0 (hidden): witness u8 | entry: fingerprint [| fingerprint]
//	                 kind 1 (logits): entry: k u16 | k × (id i32 | logit f32)
//	                 fingerprint: dim u32 | norm f32 | outNorm f32 | k u16 |
//	                 k × (idx i32 | val f32 | out f32) | p u16 | p × f32
//	AuditError       code u16 | msgLen u16 | msg
//
// Values travel in the session's activation dtype: a stage's inputs arrived in
// it, so f16 carries them exactly. Decoding follows the frame codec's rules:
// every count is bounded before anything is sized from it, every error wraps
// ErrBadFrame, and encoding is canonical.

// AuditVersion is the version byte of every audit message.
const AuditVersion = 1

// AuditType is the type byte of an audit message.
type AuditType uint8

// The audit message types.
const (
	AuditTypeEvidenceRequest  AuditType = 1 // client → stage: the rows you received
	AuditTypeEvidence         AuditType = 2 // stage → client
	AuditTypeRecomputeRequest AuditType = 3 // client → auditor: re-execute this hop
	AuditTypeRecomputed       AuditType = 4 // auditor → client: fingerprints of the result
	AuditTypeError            AuditType = 5 // either answer, refused
)

// String names the type for errors.
func (t AuditType) String() string {
	switch t {
	case AuditTypeEvidenceRequest:
		return "EvidenceRequest"
	case AuditTypeEvidence:
		return "Evidence"
	case AuditTypeRecomputeRequest:
		return "RecomputeRequest"
	case AuditTypeRecomputed:
		return "Recomputed"
	case AuditTypeError:
		return "AuditError"
	}
	return fmt.Sprintf("AuditType(%d)", uint8(t))
}

// MaxLogitsK bounds the logits per position in a Recomputed message.
const MaxLogitsK = 256

// AuditMessage is one message of AuditProtocol: *EvidenceRequest, *Evidence,
// *RecomputeRequest, *Recomputed or *AuditError.
type AuditMessage interface {
	AuditType() AuditType
	appendAudit(b []byte) ([]byte, error)
}

// EvidenceRequest asks the stage of hop Hop of a session for the rows it
// received at positions [From, To). Only the session's client may ask.
type EvidenceRequest struct {
	Session  SessionID
	Hop      int
	From, To int
}

// Evidence is the rows a stage received, positions From on, as it computed them.
type Evidence struct {
	Session SessionID
	Hop     int
	From    int
	DType   ActivationDType
	Width   int
	// Rows holds len(Rows)/Width rows of Width values.
	Rows []float32
}

// RecomputeRequest asks an auditor to re-execute layers [First, Last) of Model
// over a whole prefix of a session, from position 0, and to fingerprint the
// result at positions Checks. The input is Tokens for a first hop (First == 0),
// else Inputs: rows of Width values, exactly as the audited stage received them.
type RecomputeRequest struct {
	Session SessionID
	Hop     int
	// Seed seeds the fingerprints' projections; the client draws it after the
	// work was done.
	Seed        uint64
	Model       []byte
	First, Last int
	// DType is how activations travelled in the session: the auditor allows for
	// its rounding.
	DType  ActivationDType
	Tokens []int32
	Inputs []float32
	Width  int
	// Checks are the positions to fingerprint, increasing.
	Checks []int
	// Witness, for a first hop that is not the last, holds the rows the next
	// stage received at Checks (len(Checks) × Width): only the auditor knows
	// the embeddings the hop's contribution is measured from, so it
	// fingerprints the witness too. Width is then the witness rows' width.
	Witness []float32
}

// Rows is the number of positions the request re-executes.
func (r *RecomputeRequest) Rows() int {
	if r.Tokens != nil {
		return len(r.Tokens)
	}
	if r.Width <= 0 {
		return 0
	}
	return len(r.Inputs) / r.Width
}

// Recomputed is an auditor's answer: for a hop that ends inside the model,
// the fingerprint of its recomputed contribution at each checked position (and
// of the witness rows, when the request carried them); for a last hop, the
// largest logits at each.
type Recomputed struct {
	Hidden  []verify.Fingerprint
	Witness []verify.Fingerprint
	Logits  []verify.Logits
}

// AuditError refuses a request.
type AuditError struct {
	Code    ErrorCode
	Message string
}

func (e *AuditError) Error() string { return "audit refused: " + e.Code.String() + ": " + e.Message }

// AuditType implements AuditMessage.
func (*EvidenceRequest) AuditType() AuditType { return AuditTypeEvidenceRequest }

// AuditType implements AuditMessage.
func (*Evidence) AuditType() AuditType { return AuditTypeEvidence }

// AuditType implements AuditMessage.
func (*RecomputeRequest) AuditType() AuditType { return AuditTypeRecomputeRequest }

// AuditType implements AuditMessage.
func (*Recomputed) AuditType() AuditType { return AuditTypeRecomputed }

// AuditType implements AuditMessage.
func (*AuditError) AuditType() AuditType { return AuditTypeError }

// Lengths (of everything after the length field) that readers bound messages by.

// fingerprintLen is the encoded size of a fingerprint of a row of dim values.
func fingerprintLen(dim int) int {
	return 4 + 4 + 4 + 2 + min(verify.TopK, dim)*12 + 2 + verify.Projections*4
}

// EvidenceLen bounds an Evidence message of rows rows of width values.
func EvidenceLen(rows, width int, dt ActivationDType) int {
	return 2 + sessionLen + 2 + 4 + 4 + 1 + 4 + rows*width*dt.Size()
}

// RecomputeRequestLen bounds a RecomputeRequest of at most rows positions of
// width values (the witness included).
func RecomputeRequestLen(rows, width int, dt ActivationDType) int {
	return 2 + sessionLen + 2 + 8 + 2 + 2 + 1 + 2 + MaxModelCIDBytes + 4 + 1 + 4 +
		rows*max(4, width*dt.Size()) + 4 + 4*rows + 1 + 4 + rows*width*dt.Size()
}

// RecomputedLen bounds a Recomputed message of checks positions of a model of
// width dim: two fingerprints each, or MaxLogitsK logits.
func RecomputedLen(checks, dim int) int {
	return 2 + 1 + 4 + 1 + checks*max(2*fingerprintLen(dim), 2+MaxLogitsK*8)
}

// maxAuditErrorLen bounds an AuditError.
const maxAuditErrorLen = 2 + 2 + 2 + MaxMessageBytes

// AppendAudit appends m's encoding, length prefix included, to dst.
func AppendAudit(dst []byte, m AuditMessage) ([]byte, error) {
	if m == nil {
		return dst, badFrame("nil audit message")
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, AuditVersion, byte(m.AuditType()))
	dst, err := m.appendAudit(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - lengthLen
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("%w: %s of %d bytes", ErrFrameTooLarge, m.AuditType(), n)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// WriteAudit writes m to w in one Write call.
func WriteAudit(w io.Writer, m AuditMessage) error {
	b, err := AppendAudit(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadAudit reads one audit message, refusing a length above limit before
// allocating.
func ReadAudit(r io.Reader, limit int) (AuditMessage, error) {
	var hdr [lengthLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max(limit, 0)) {
		return nil, fmt.Errorf("%w: audit message of %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if n < minFrameLen {
		return nil, badFrame("audit message length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("pipeline: stream ends inside an audit message: %w", err)
	}
	return decodeAudit(b)
}

// decodeAudit decodes one message, b being everything after the length field.
func decodeAudit(b []byte) (AuditMessage, error) {
	if b[0] != AuditVersion {
		return nil, fmt.Errorf("%w: %w %d", ErrBadFrame, ErrFrameVersion, b[0])
	}
	t := AuditType(b[1])
	c := cursor{p: b[2:], name: t.String()}
	var m AuditMessage
	switch t {
	case AuditTypeEvidenceRequest:
		m = decodeEvidenceRequest(&c)
	case AuditTypeEvidence:
		m = decodeEvidence(&c)
	case AuditTypeRecomputeRequest:
		m = decodeRecomputeRequest(&c)
	case AuditTypeRecomputed:
		m = decodeRecomputed(&c)
	case AuditTypeError:
		e := &AuditError{Code: ErrorCode(c.u16("code"))}
		e.Message = string(c.blob("message", 0, MaxMessageBytes))
		if c.err == nil && e.Code == 0 {
			c.fail("error code 0")
		}
		m = e
	default:
		return nil, fmt.Errorf("%w: %w %d", ErrBadFrame, ErrFrameType, b[1])
	}
	if err := c.end(); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeEvidenceRequest(c *cursor) AuditMessage {
	m := &EvidenceRequest{Session: c.session(), Hop: int(c.u16("hop")), From: int(c.u32("from")), To: int(c.u32("to"))}
	if c.err == nil && m.From >= m.To {
		c.fail("empty range [%d, %d)", m.From, m.To)
	}
	return m
}

// values reads n rows of width values in dt, the rest of the payload or not.
func (c *cursor) values(n, width uint64, dt ActivationDType, field string) []float32 {
	if c.err != nil {
		return nil
	}
	size := uint64(dt.Size())
	have := uint64(len(c.p))
	if width == 0 || n > have/width || n*width*size > have {
		c.fail("%s: %d rows × width %d of %s exceed %d bytes", field, n, width, dt, have)
		return nil
	}
	v := make([]float32, n*width)
	src := c.take(int(n*width*size), field)
	if dt == ActF16 {
		getF16s(v, src)
	} else {
		getF32s(v, src)
	}
	return v
}

func (c *cursor) dtype() ActivationDType {
	dt := ActivationDType(c.u8("dtype"))
	if c.err == nil && !dt.valid() {
		c.fail("unknown dtype %d", uint8(dt))
	}
	return dt
}

func decodeEvidence(c *cursor) AuditMessage {
	m := &Evidence{Session: c.session(), Hop: int(c.u16("hop")), From: int(c.u32("from"))}
	n := uint64(c.u32("rows"))
	m.DType = c.dtype()
	m.Width = int(c.u32("width"))
	if c.err == nil && (n == 0 || m.Width == 0) {
		c.fail("%d rows of width %d", n, m.Width)
		return m
	}
	m.Rows = c.values(n, uint64(m.Width), m.DType, "rows")
	return m
}

func decodeRecomputeRequest(c *cursor) AuditMessage {
	m := &RecomputeRequest{Session: c.session(), Hop: int(c.u16("hop")), Seed: c.u64("seed"),
		First: int(c.u16("first layer")), Last: int(c.u16("last layer"))}
	m.DType = c.dtype()
	m.Model = slices.Clone(c.blob("model CID", 1, MaxModelCIDBytes))
	c.layers("", m.First, m.Last)
	n := uint64(c.u32("positions"))
	kind := ForwardKind(c.u8("kind"))
	if c.err != nil {
		return m
	}
	if n == 0 {
		c.fail("no positions")
		return m
	}
	switch kind {
	case KindTokens:
		if m.First != 0 {
			c.fail("tokens for a hop starting at layer %d", m.First)
			return m
		}
		if n > uint64(len(c.p))/4 {
			c.fail("%d tokens exceed %d bytes", n, len(c.p))
			return m
		}
		m.Tokens = make([]int32, n)
		getI32s(m.Tokens, c.take(int(4*n), "tokens"))
	case KindActivations:
		m.Width = int(c.u32("width"))
		if c.err == nil && m.Width == 0 {
			c.fail("width 0")
			return m
		}
		m.Inputs = c.values(n, uint64(m.Width), m.DType, "inputs")
	default:
		c.fail("unknown kind %d", uint8(kind))
		return m
	}
	checks := uint64(c.u32("checks"))
	if c.err == nil && (checks == 0 || checks > n || checks > uint64(len(c.p))/4) {
		c.fail("%d checks of %d positions in %d bytes", checks, n, len(c.p))
		return m
	}
	if c.err != nil {
		return m
	}
	m.Checks = make([]int, checks)
	for i := range m.Checks {
		p := c.u32("check")
		if uint64(p) >= n || (i > 0 && int(p) <= m.Checks[i-1]) {
			c.fail("check %d at position %d of %d, not increasing", i, p, n)
			return m
		}
		m.Checks[i] = int(p)
	}
	switch w := c.u8("witness"); {
	case c.err != nil:
	case w == 1 && kind == KindTokens:
		m.Width = int(c.u32("width"))
		if c.err == nil && m.Width == 0 {
			c.fail("witness width 0")
			return m
		}
		m.Witness = c.values(checks, uint64(m.Width), m.DType, "witness")
	case w != 0:
		c.fail("witness flag %d for %s", w, kind)
	}
	return m
}

func (c *cursor) u64(field string) uint64 {
	if b := c.take(8, field); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (c *cursor) f32(field string) float32 { return math.Float32frombits(c.u32(field)) }

func decodeRecomputed(c *cursor) AuditMessage {
	m := &Recomputed{}
	kind := c.u8("kind")
	n := uint64(c.u32("count"))
	if c.err != nil {
		return m
	}
	if n == 0 {
		c.fail("no entries")
		return m
	}
	switch kind {
	case 0:
		witness := c.u8("witness")
		if c.err == nil && witness > 1 {
			c.fail("witness flag %d", witness)
			return m
		}
		per := uint64(1 + int(witness))
		// The smallest fingerprint is of a one-value row.
		if c.err != nil || n*per > uint64(len(c.p))/uint64(fingerprintLen(1)) {
			c.fail("%d fingerprints cannot fit in %d bytes", n*per, len(c.p))
			return m
		}
		m.Hidden = make([]verify.Fingerprint, n)
		if witness == 1 {
			m.Witness = make([]verify.Fingerprint, n)
		}
		for i := range m.Hidden {
			m.Hidden[i] = c.fingerprint()
			if witness == 1 {
				m.Witness[i] = c.fingerprint()
			}
			if c.err != nil {
				return m
			}
		}
	case 1:
		if n > uint64(len(c.p))/(2+8) {
			c.fail("%d logit lists cannot fit in %d bytes", n, len(c.p))
			return m
		}
		m.Logits = make([]verify.Logits, n)
		for i := range m.Logits {
			k := int(c.u16("k"))
			if c.err == nil && (k == 0 || k > MaxLogitsK || k*8 > len(c.p)) {
				c.fail("%d logits", k)
			}
			if c.err != nil {
				return m
			}
			l := verify.Logits{IDs: make([]int32, k), Vals: make([]float32, k)}
			for j := range k {
				l.IDs[j] = int32(c.u32("id"))
				l.Vals[j] = c.f32("logit")
			}
			if err := l.Validate(math.MaxInt32); err != nil {
				c.fail("%v", err)
				return m
			}
			m.Logits[i] = l
		}
	default:
		c.fail("unknown kind %d", kind)
	}
	return m
}

func (c *cursor) fingerprint() verify.Fingerprint {
	f := verify.Fingerprint{Dim: int(c.u32("dim")), Norm: c.f32("norm"), OutNorm: c.f32("out norm")}
	k := int(c.u16("k"))
	if c.err == nil && (f.Dim < 1 || f.Dim > verify.MaxDim || k != min(verify.TopK, f.Dim)) {
		c.fail("fingerprint of width %d with %d entries", f.Dim, k)
	}
	if c.err != nil {
		return f
	}
	f.Idx, f.Val, f.Out = make([]int32, k), make([]float32, k), make([]float32, k)
	for i := range k {
		f.Idx[i] = int32(c.u32("index"))
		f.Val[i] = c.f32("value")
		f.Out[i] = c.f32("output")
	}
	p := int(c.u16("projections"))
	if c.err == nil && p != verify.Projections {
		c.fail("%d projections", p)
	}
	if c.err != nil {
		return f
	}
	f.Proj = make([]float32, p)
	for i := range f.Proj {
		f.Proj[i] = c.f32("projection")
	}
	if c.err == nil {
		if err := f.Validate(f.Dim); err != nil {
			c.fail("%v", err)
		}
	}
	return f
}

func (m *EvidenceRequest) appendAudit(b []byte) ([]byte, error) {
	if !fitsU16(m.Hop) || m.From < 0 || m.From >= m.To || uint64(m.To) > math.MaxUint32 {
		return b, badFrame("EvidenceRequest: hop %d, range [%d, %d)", m.Hop, m.From, m.To)
	}
	b = append(b, m.Session[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Hop))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.From))
	return binary.LittleEndian.AppendUint32(b, uint32(m.To)), nil
}

func appendValues(b []byte, v []float32, dt ActivationDType) []byte {
	if dt == ActF16 {
		return appendF16s(b, v)
	}
	return appendF32s(b, v)
}

func (m *Evidence) appendAudit(b []byte) ([]byte, error) {
	rows := 0
	if m.Width > 0 {
		rows = len(m.Rows) / m.Width
	}
	switch {
	case !fitsU16(m.Hop) || m.From < 0 || uint64(m.From) > math.MaxUint32:
		return b, badFrame("Evidence: hop %d from %d", m.Hop, m.From)
	case !m.DType.valid():
		return b, badFrame("Evidence: dtype %d", m.DType)
	case m.Width < 1 || uint64(m.Width) > math.MaxUint32 || rows == 0 || rows*m.Width != len(m.Rows):
		return b, badFrame("Evidence: %d values in rows of %d", len(m.Rows), m.Width)
	}
	b = append(b, m.Session[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Hop))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.From))
	b = binary.LittleEndian.AppendUint32(b, uint32(rows))
	b = append(b, byte(m.DType))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Width))
	return appendValues(b, m.Rows, m.DType), nil
}

func (m *RecomputeRequest) appendAudit(b []byte) ([]byte, error) {
	n := m.Rows()
	bad := func(format string, args ...any) ([]byte, error) {
		return b, badFrame("RecomputeRequest: %s", fmt.Sprintf(format, args...))
	}
	switch {
	case !fitsU16(m.Hop):
		return bad("hop %d", m.Hop)
	case !validLayers(m.First, m.Last):
		return bad("layers [%d, %d)", m.First, m.Last)
	case !m.DType.valid():
		return bad("dtype %d", m.DType)
	case len(m.Model) < 1 || len(m.Model) > MaxModelCIDBytes:
		return bad("model CID of %d bytes", len(m.Model))
	case n == 0 || uint64(n) > math.MaxUint32:
		return bad("%d positions", n)
	case m.Tokens != nil && (m.First != 0 || len(m.Inputs) != 0):
		return bad("tokens for layer %d, or with inputs", m.First)
	case m.Tokens == nil && (m.Width < 1 || uint64(m.Width) > math.MaxUint32 || n*m.Width != len(m.Inputs)):
		return bad("%d inputs in rows of %d", len(m.Inputs), m.Width)
	case m.Tokens != nil && m.Witness == nil && m.Width != 0:
		return bad("width %d without witness rows", m.Width)
	case len(m.Checks) == 0 || len(m.Checks) > n:
		return bad("%d checks of %d positions", len(m.Checks), n)
	case m.Witness != nil && (m.Tokens == nil || m.Width < 1 || uint64(m.Width) > math.MaxUint32 || len(m.Witness) != len(m.Checks)*m.Width):
		return bad("witness of %d values for %d checks of width %d", len(m.Witness), len(m.Checks), m.Width)
	}
	for i, p := range m.Checks {
		if p < 0 || p >= n || (i > 0 && p <= m.Checks[i-1]) {
			return bad("check %d at position %d", i, p)
		}
	}
	b = append(b, m.Session[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Hop))
	b = binary.LittleEndian.AppendUint64(b, m.Seed)
	b = binary.LittleEndian.AppendUint16(b, uint16(m.First))
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Last))
	b = append(b, byte(m.DType))
	b = appendBlob(b, m.Model)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	if m.Tokens != nil {
		b = append(b, byte(KindTokens))
		b = appendI32s(b, m.Tokens)
	} else {
		b = append(b, byte(KindActivations))
		b = binary.LittleEndian.AppendUint32(b, uint32(m.Width))
		b = appendValues(b, m.Inputs, m.DType)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Checks)))
	for _, p := range m.Checks {
		b = binary.LittleEndian.AppendUint32(b, uint32(p))
	}
	if m.Witness == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Width))
	return appendValues(b, m.Witness, m.DType), nil
}

func (m *Recomputed) appendAudit(b []byte) ([]byte, error) {
	switch {
	case len(m.Hidden) > 0 && len(m.Logits) > 0:
		return b, badFrame("Recomputed: both fingerprints and logits")
	case len(m.Logits) > 0:
		if uint64(len(m.Logits)) > math.MaxUint32 {
			return b, badFrame("Recomputed: %d logit lists", len(m.Logits))
		}
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Logits)))
		for _, l := range m.Logits {
			if len(l.IDs) > MaxLogitsK || l.Validate(math.MaxInt32) != nil {
				return b, badFrame("Recomputed: malformed logits")
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(len(l.IDs)))
			for j, id := range l.IDs {
				b = binary.LittleEndian.AppendUint32(b, uint32(id))
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(l.Vals[j]))
			}
		}
		return b, nil
	case len(m.Hidden) > 0:
		if uint64(len(m.Hidden)) > math.MaxUint32 || (m.Witness != nil && len(m.Witness) != len(m.Hidden)) {
			return b, badFrame("Recomputed: %d fingerprints, %d of witnesses", len(m.Hidden), len(m.Witness))
		}
		b = append(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Hidden)))
		if m.Witness != nil {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		var err error
		for i := range m.Hidden {
			if b, err = appendFingerprint(b, &m.Hidden[i]); err != nil {
				return b, err
			}
			if m.Witness != nil {
				if b, err = appendFingerprint(b, &m.Witness[i]); err != nil {
					return b, err
				}
			}
		}
		return b, nil
	}
	return b, badFrame("Recomputed: no entries")
}

func appendFingerprint(b []byte, f *verify.Fingerprint) ([]byte, error) {
	if f.Dim < 1 || f.Dim > verify.MaxDim || f.Validate(f.Dim) != nil {
		return b, badFrame("Recomputed: malformed fingerprint")
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(f.Dim))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f.Norm))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f.OutNorm))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Idx)))
	for i := range f.Idx {
		b = binary.LittleEndian.AppendUint32(b, uint32(f.Idx[i]))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f.Val[i]))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f.Out[i]))
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Proj)))
	for _, v := range f.Proj {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b, nil
}

func (m *AuditError) appendAudit(b []byte) ([]byte, error) {
	if m.Code == 0 {
		return b, badFrame("AuditError: code 0")
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(m.Code))
	return appendBlob(b, []byte(cutUTF8(m.Message, MaxMessageBytes))), nil
}
