package pipeline

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"unicode/utf8"
	"unsafe"

	"github.com/imece/imece/kernels"
)

// The wire format of StageProtocol. One stream per hop per session carries frames:
//
//	u32 length      little-endian, of everything after it (so at least 2)
//	u8  version     FrameVersion
//	u8  type        FrameType
//	payload         by type, below; all integers little-endian
//
// Every payload starts with the 16-byte session ID. Variable-length byte strings
// and lists carry a u16 count before them, and each has a documented bound
// (MaxModelCIDBytes, ...), so a decoder never sizes anything from an unchecked
// number. Encoding is canonical: a frame that decodes re-encodes to the same bytes
// (f16 NaN payloads excepted, see ActF16), which makes the fuzz property strict.
//
//	Open     session [16] | hop u16 | first u16 | last u16 | maxLen u32 | dtype u8 |
//	         client [32] | ticket [64] | cidLen u16 | cid | tailLen u16 | tail hop × tailLen
//	         tail hop: peerLen u16 | peer | first u16 | last u16 |
//	                   addrCount u16 | (addrLen u16 | addr) × addrCount
//	Ready    session [16]
//	Forward  session [16] | pos u32 | n u32 | flags u8 | kind u8 | [topK u32] | body
//	         flags: bit 0 NoResult, bit 1 TopK (the topK field is present)
//	         kind 0 (tokens):      n × int32
//	         kind 1 (activations): dtype u8 | width u32 | n × width × (f32 | f16)
//	Result   session [16] | pos u32 | vocab u32 | count u32 |
//	         [count × int32 ids, when count < vocab] | count × f32
//	Error    session [16] | code u16 | hop u16 | peerLen u16 | peer | msgLen u16 | msg
//	Close    session [16]
//	Attach   session [16]
//
// A Forward frame names its activation dtype although Open fixed it for the
// session: the decoder then needs no session state, and a stage can tell a
// mismatched sender (CodeBadRequest) from a corrupt frame.

// FrameVersion is the version byte of every frame this code writes, and the only
// one it reads. A change to any layout bumps it together with StageProtocol.
const FrameVersion = 1

// Bounds of the variable-length fields. They keep an Open frame under
// MaxOpenFrameLen whatever a peer sends, and each is far above real values (a CIDv1
// with sha2-256 is 36 bytes, an Ed25519 peer ID 38, a multiaddr tens).
const (
	MaxModelCIDBytes = 128  // model CID in Open
	MaxPeerIDBytes   = 64   // peer ID in a tail hop or an Error
	MaxHopAddrs      = 16   // multiaddrs per tail hop
	MaxAddrBytes     = 256  // one multiaddr
	MaxTailHops      = 256  // hops after this one in Open
	MaxMessageBytes  = 1024 // Error message
)

// Frame lengths (the value of the length field) a reader must accept: pass the
// largest a stream can carry to FrameReader.SetMax, so a peer can make the reader
// allocate no more than the session needs.
const (
	// MaxOpenFrameLen bounds every Open frame, whatever its route tail.
	MaxOpenFrameLen = 2 + sessionLen + 2 + 2 + 2 + 4 + 1 + 32 + 64 + 2 + MaxModelCIDBytes + 2 +
		MaxTailHops*(2+MaxPeerIDBytes+2+2+2+MaxHopAddrs*(2+MaxAddrBytes))
	// MaxErrorFrameLen bounds every Error frame.
	MaxErrorFrameLen = 2 + sessionLen + 2 + 2 + 2 + MaxPeerIDBytes + 2 + MaxMessageBytes
)

// ForwardFrameLen is the length of a Forward frame of rows rows: activations of
// width values in dt, or token ids when width is 0. A stage bounds its upstream
// reader by ForwardFrameLen(maxLen, width, dtype) once the session is open, since
// prefill sends at most the whole context in one frame.
func ForwardFrameLen(rows, width int, dt ActivationDType) int {
	const fixed = 2 + sessionLen + 4 + 4 + 1 + 1 + 4
	if width == 0 {
		return fixed + 4*rows
	}
	return fixed + 1 + 4 + rows*width*dt.Size()
}

// ResultFrameLen is the length of a Result frame with vocab logits: what a client
// (or the stage before the last) bounds its downstream reader by.
func ResultFrameLen(vocab int) int { return 2 + sessionLen + 4 + 4 + 4 + 4*vocab }

const (
	sessionLen  = 16
	lengthLen   = 4
	minFrameLen = 2 // version and type, an empty payload
)

// Errors of the codec. Every error a decoder returns for bad bytes wraps
// ErrBadFrame, so a stage answers all of them the same way (CodeBadRequest, then
// close); ErrFrameVersion and ErrFrameType are wrapped too, for a clearer message.
// A stream that ends inside a frame gives io.ErrUnexpectedEOF, one that ends between
// frames io.EOF, and a transport failure its own error: those are the stream's
// fault, not the frame's.
var (
	// ErrFrameTooLarge: the length field exceeds the reader's limit, which is
	// checked before anything is allocated (and the frame is not read); or a frame
	// to write does not fit the u32 length.
	ErrFrameTooLarge = errors.New("pipeline: frame exceeds the size limit")
	// ErrBadFrame: the bytes are not a well-formed frame (short or zero length,
	// truncated payload, trailing bytes, counts that disagree with the payload or
	// exceed their bounds, invalid values), or a frame to write has such fields.
	ErrBadFrame = errors.New("pipeline: malformed frame")
	// ErrFrameVersion: the version byte is not FrameVersion.
	ErrFrameVersion = errors.New("unsupported frame version")
	// ErrFrameType: the type byte names no frame of this version.
	ErrFrameType = errors.New("unknown frame type")
)

func badFrame(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
}

// FrameType is the type byte of a frame. Zero is not a type, so a zeroed buffer
// never decodes.
type FrameType uint8

// The frame types of FrameVersion 1.
const (
	FrameTypeOpen    FrameType = 1 // client → stage, stage → next stage: start a session
	FrameTypeReady   FrameType = 2 // back up the chain: every stage from here on is open
	FrameTypeForward FrameType = 3 // down the chain: tokens or activations for positions
	FrameTypeResult  FrameType = 4 // back up the chain: the logits after a Forward
	FrameTypeError   FrameType = 5 // back up the chain: the session failed here or below
	FrameTypeClose   FrameType = 6 // down the chain: the session is over
	FrameTypeAttach  FrameType = 7 // client → last stage: send this session's results here
)

// String names the type for logs and errors.
func (t FrameType) String() string {
	switch t {
	case FrameTypeOpen:
		return "Open"
	case FrameTypeReady:
		return "Ready"
	case FrameTypeForward:
		return "Forward"
	case FrameTypeResult:
		return "Result"
	case FrameTypeError:
		return "Error"
	case FrameTypeClose:
		return "Close"
	case FrameTypeAttach:
		return "Attach"
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// SessionID names a session on every stage of its chain; the client draws it at
// random. Each frame repeats it so a stage can check that a stream carries the
// session it opened.
type SessionID [sessionLen]byte

// String is the ID in hex, for logs.
func (s SessionID) String() string { return hex.EncodeToString(s[:]) }

// ActivationDType is how activations travel between stages. F32 is the default and
// exact; F16 halves the bytes on slow links at the cost of rounding each hop's
// output (which makes results differ from a local run).
type ActivationDType uint8

// The activation encodings.
const (
	// ActF32 sends IEEE 754 binary32 values as they are.
	ActF32 ActivationDType = 0
	// ActF16 sends binary16 values, rounded to nearest even by kernels.F32ToF16.
	// Decoding widens them exactly; a NaN comes back quiet, so the one thing that
	// does not round-trip bit for bit is a signalling NaN payload.
	ActF16 ActivationDType = 1
)

// Size is the number of bytes of one value.
func (d ActivationDType) Size() int {
	if d == ActF16 {
		return 2
	}
	return 4
}

func (d ActivationDType) valid() bool { return d == ActF32 || d == ActF16 }

// String names the encoding for logs and errors.
func (d ActivationDType) String() string {
	switch d {
	case ActF32:
		return "f32"
	case ActF16:
		return "f16"
	}
	return fmt.Sprintf("ActivationDType(%d)", uint8(d))
}

// ErrorCode says why a session failed, so the client can decide between retrying,
// re-planning around a peer, and giving up, without parsing messages.
type ErrorCode uint16

// The error codes. Zero is not a code. A code this version does not know still
// decodes (peers may add codes before the version changes); treat it as
// CodeInternal.
const (
	// CodeBadRequest: a frame was malformed or out of protocol (Forward before
	// Open, a dtype other than the session's, a route tail that does not continue
	// this hop's range). The sender has a bug; do not retry as is.
	CodeBadRequest ErrorCode = 1
	// CodeNoSuchModel: the stage does not hold the model CID.
	CodeNoSuchModel ErrorCode = 2
	// CodeRangeNotServed: the stage holds the model but not the requested layers.
	CodeRangeNotServed ErrorCode = 3
	// CodeBusy: the stage has no capacity (sessions, KV memory) for the session
	// now; another peer, or the same later, may.
	CodeBusy ErrorCode = 4
	// CodeContextFull: a Forward would pass the session's MaxLen.
	CodeContextFull ErrorCode = 5
	// CodeOutOfOrder: a Forward's Pos is not the session's next position.
	CodeOutOfOrder ErrorCode = 6
	// CodeHopFailed: a downstream hop could not be reached or died; Error.Hop and
	// Error.Peer name it, so the client re-plans that span only.
	CodeHopFailed ErrorCode = 7
	// CodeInternal: the stage failed for its own reasons.
	CodeInternal ErrorCode = 8
	// CodeClosing: the stage is shutting down or dropped the session (idle too
	// long); re-plan without it.
	CodeClosing ErrorCode = 9
	// CodeNoSuchSession: a frame names a session this stream did not open.
	CodeNoSuchSession ErrorCode = 10
	// CodePaymentRequired: the client cannot pay for the session (too few
	// credits) or left a receipt of this stage unsigned; the message says which.
	// Another peer may serve it; this one will not until the client settles.
	CodePaymentRequired ErrorCode = 11
)

// String names the code for logs and error messages.
func (c ErrorCode) String() string {
	switch c {
	case CodeBadRequest:
		return "bad request"
	case CodeNoSuchModel:
		return "no such model"
	case CodeRangeNotServed:
		return "range not served"
	case CodeBusy:
		return "busy"
	case CodeContextFull:
		return "context full"
	case CodeOutOfOrder:
		return "out of order"
	case CodeHopFailed:
		return "hop failed"
	case CodeInternal:
		return "internal error"
	case CodeClosing:
		return "closing"
	case CodeNoSuchSession:
		return "no such session"
	case CodePaymentRequired:
		return "payment required"
	}
	return fmt.Sprintf("ErrorCode(%d)", uint16(c))
}

// Frame is one message of StageProtocol: *OpenFrame, *ReadyFrame, *ForwardFrame,
// *ResultFrame, *ErrorFrame or *CloseFrame. The set is closed (the interface has an
// unexported method) so a type switch over it is exhaustive.
type Frame interface {
	// Type is the frame's type byte.
	Type() FrameType
	// SessionID is the session the frame belongs to.
	SessionID() SessionID
	// appendPayload validates the frame and appends its payload to b.
	appendPayload(b []byte) ([]byte, error)
}

// RouteHop is a hop of an Open frame's route tail: the planner's Hop and the
// addresses to dial it at, so each stage can open the next without a DHT lookup.
type RouteHop struct {
	Hop
	// Addrs are the hop's multiaddrs in binary form (multiaddr.Bytes); possibly
	// none, when the stage is expected to know or find them.
	Addrs [][]byte
}

// OpenFrame starts a session on a stage; the stage then opens Tail[0], passing it
// Tail[1:], and answers Ready once the whole rest of the chain is open.
type OpenFrame struct {
	Session SessionID
	// Model is the model's CID in binary form (cid.Cid.Bytes).
	Model []byte
	// Hop is this stage's index in the chain, so errors can name where they arose.
	Hop int
	// First and Last are the layers [First, Last) this stage runs.
	First, Last int
	// MaxLen is the number of positions the session may reach: the KV cache size.
	MaxLen int
	// DType is how activations travel on every hop of the session.
	DType ActivationDType
	// Client is the Ed25519 key of the client the session is for: who pays.
	// Ticket is its signature over the session (see Ticket), which every stage
	// checks, so no stage can open a session billed to someone else.
	Client [32]byte
	Ticket [64]byte
	// Tail lists the hops after this one, in order.
	Tail []RouteHop
}

// ReadyFrame says that the chain from the sending stage on is open.
type ReadyFrame struct{ Session SessionID }

// CloseFrame ends a session; each stage frees it and passes the Close on.
type CloseFrame struct{ Session SessionID }

// AttachFrame opens a second stream of a session, from the client straight to the
// last stage, which then sends its results there rather than back up the chain:
// one hop for the logits instead of one per stage. The session ID, known only to
// the chain and its client, is the capability. The stage answers Ready.
type AttachFrame struct{ Session SessionID }

// ForwardKind says what a Forward frame's rows are.
type ForwardKind uint8

// The kinds of Forward rows.
const (
	// KindTokens: token ids, from the client to the first stage, which embeds them.
	KindTokens ForwardKind = 0
	// KindActivations: the hidden state after some layer, one row per position.
	KindActivations ForwardKind = 1
)

// String names the kind for logs and errors.
func (k ForwardKind) String() string {
	switch k {
	case KindTokens:
		return "tokens"
	case KindActivations:
		return "activations"
	}
	return fmt.Sprintf("ForwardKind(%d)", uint8(k))
}

// Bits of a Forward frame's flags; the others must be zero.
const (
	flagNoResult = 1 << 0
	flagTopK     = 1 << 1
)

// ForwardFrame carries rows for consecutive positions Pos, Pos+1, ... down the
// chain: a whole prompt at prefill, one position per decoded token.
type ForwardFrame struct {
	Session SessionID
	// Pos is the position of the first row.
	Pos int
	// NoResult asks the last stage to compute (fill its KV cache) but return no
	// Result: a replacement stage replays history after a failover this way.
	NoResult bool
	Kind     ForwardKind
	// Tokens holds one id per row for KindTokens; it must be empty otherwise.
	Tokens []int32
	// Acts holds Rows×Width values, row after row, for KindActivations; it must
	// be empty otherwise.
	Acts []float32
	// Width is the number of values in one activation row (the model's dimension).
	Width int
	// DType is how Acts travel; decoding always yields float32.
	DType ActivationDType
	// TopK, when positive, asks the last stage for only the TopK largest logits
	// with their token ids instead of the whole vocabulary: all a sampler that
	// keeps the top K needs, at a fraction of the bytes on every hop back.
	TopK int
}

// Rows is the number of positions the frame carries.
func (f *ForwardFrame) Rows() int {
	if f.Kind == KindTokens {
		return len(f.Tokens)
	}
	if f.Width <= 0 {
		return 0
	}
	return len(f.Acts) / f.Width
}

// ResultFrame returns the logits that follow position Pos to the client: all of
// them (IDs nil, len(Logits) == Vocab), or the largest few with their ids.
type ResultFrame struct {
	Session SessionID
	// Pos is the position whose next-token logits these are: the last row of the
	// Forward that asked for them.
	Pos int
	// Vocab is the vocabulary size.
	Vocab int
	// IDs are the token ids of Logits when the result is sparse; nil when Logits
	// holds one value per vocabulary entry.
	IDs    []int32
	Logits []float32
}

// ErrorFrame reports that the session failed at hop Hop; it travels back up the
// chain to the client, and each stage closes the session as it passes.
type ErrorFrame struct {
	Session SessionID
	Code    ErrorCode
	// Hop is the index of the hop that failed or raised the error.
	Hop int
	// Peer is the failed peer's ID (string(peer.ID)) for CodeHopFailed, else empty.
	Peer string
	// Message is for logs: text from a remote peer, untrusted, at most
	// MaxMessageBytes (a longer one is cut at a character boundary when encoded).
	Message string
}

// Type implements Frame.
func (*OpenFrame) Type() FrameType { return FrameTypeOpen }

// Type implements Frame.
func (*ReadyFrame) Type() FrameType { return FrameTypeReady }

// Type implements Frame.
func (*ForwardFrame) Type() FrameType { return FrameTypeForward }

// Type implements Frame.
func (*ResultFrame) Type() FrameType { return FrameTypeResult }

// Type implements Frame.
func (*ErrorFrame) Type() FrameType { return FrameTypeError }

// Type implements Frame.
func (*CloseFrame) Type() FrameType { return FrameTypeClose }

// Type implements Frame.
func (*AttachFrame) Type() FrameType { return FrameTypeAttach }

// SessionID implements Frame.
func (f *OpenFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *ReadyFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *ForwardFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *ResultFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *ErrorFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *CloseFrame) SessionID() SessionID { return f.Session }

// SessionID implements Frame.
func (f *AttachFrame) SessionID() SessionID { return f.Session }

// AppendFrame appends f's encoding, length prefix included, to dst. It checks every
// field against the bounds a reader enforces, so what it writes a reader accepts
// (given a large enough limit); on error dst comes back unchanged.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if f == nil {
		return dst, badFrame("nil frame")
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, FrameVersion, byte(f.Type()))
	dst, err := f.appendPayload(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - lengthLen
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("%w: %s frame of %d bytes", ErrFrameTooLarge, f.Type(), n)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// WriteFrame writes f to w in one Write call. FrameWriter does the same without
// allocating a buffer per frame.
func WriteFrame(w io.Writer, f Frame) error {
	b, err := AppendFrame(nil, f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// FrameWriter writes frames to a stream, each in one Write call, reusing one buffer
// (which grows to the largest frame written) so a token's frame allocates nothing.
// It is not safe for concurrent use.
type FrameWriter struct {
	w   io.Writer
	buf []byte
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame encodes f and writes it.
func (w *FrameWriter) WriteFrame(f Frame) error {
	b, err := AppendFrame(w.buf[:0], f)
	w.buf = b[:0]
	if err != nil {
		return err
	}
	_, err = w.w.Write(b)
	return err
}

// ReadFrame reads one frame from r, refusing (with ErrFrameTooLarge, before
// allocating) a length field above max. The frame owns its memory. FrameReader
// reads a stream of frames without allocating per frame.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	fr := FrameReader{r: r, max: max}
	return fr.ReadFrame()
}

// FrameReader reads frames from a stream, reusing its buffers: after warm-up, a
// Forward or Result frame decodes without allocating. A frame it returns, and the
// Tokens, Acts and Logits slices in it, are valid only until the next ReadFrame;
// OpenFrame and ErrorFrame fields (rare frames) are freshly allocated and may be
// kept. It is not safe for concurrent use.
type FrameReader struct {
	r   io.Reader
	max int
	hdr [lengthLen]byte
	buf []byte

	// One frame of each type, decoded into in place, and the slices they borrow.
	open   OpenFrame
	ready  ReadyFrame
	fwd    ForwardFrame
	res    ResultFrame
	errf   ErrorFrame
	close  CloseFrame
	attach AttachFrame
	f32    []float32
	i32    []int32
}

// NewFrameReader returns a reader of frames from r whose length field is at most
// max.
func NewFrameReader(r io.Reader, max int) *FrameReader { return &FrameReader{r: r, max: max} }

// SetMax changes the length limit: a stage starts at MaxOpenFrameLen and widens it
// to ForwardFrameLen(maxLen, ...) once it knows the session. The buffer keeps its
// size; it only ever grows to the largest frame read.
func (r *FrameReader) SetMax(max int) { r.max = max }

// ReadFrame reads and decodes the next frame. It returns io.EOF when the stream
// ends cleanly between frames.
func (r *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("pipeline: stream ends inside a frame's length: %w", err)
		}
		return nil, err // io.EOF between frames, or the transport's error
	}
	n := binary.LittleEndian.Uint32(r.hdr[:])
	if uint64(n) > uint64(max(r.max, 0)) {
		return nil, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if n < minFrameLen {
		return nil, badFrame("length %d leaves no room for version and type", n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if got, err := io.ReadFull(r.r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("pipeline: stream ends after %d of a frame's %d bytes: %w", got, n, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return r.decode(b)
}

// decode decodes one frame, b being everything after the length field.
func (r *FrameReader) decode(b []byte) (Frame, error) {
	if b[0] != FrameVersion {
		return nil, fmt.Errorf("%w: %w %d", ErrBadFrame, ErrFrameVersion, b[0])
	}
	t := FrameType(b[1])
	c := cursor{p: b[2:], typ: t}
	var f Frame
	switch t {
	case FrameTypeOpen:
		f = r.decodeOpen(&c)
	case FrameTypeReady:
		r.ready = ReadyFrame{Session: c.session()}
		f = &r.ready
	case FrameTypeForward:
		f = r.decodeForward(&c)
	case FrameTypeResult:
		f = r.decodeResult(&c)
	case FrameTypeError:
		f = r.decodeError(&c)
	case FrameTypeClose:
		r.close = CloseFrame{Session: c.session()}
		f = &r.close
	case FrameTypeAttach:
		r.attach = AttachFrame{Session: c.session()}
		f = &r.attach
	default:
		return nil, fmt.Errorf("%w: %w %d", ErrBadFrame, ErrFrameType, b[1])
	}
	if err := c.end(); err != nil {
		return nil, err
	}
	return f, nil
}

func (r *FrameReader) decodeOpen(c *cursor) Frame {
	f := &r.open
	*f = OpenFrame{
		Session: c.session(),
		Hop:     int(c.u16("hop")),
		First:   int(c.u16("first layer")),
		Last:    int(c.u16("last layer")),
		MaxLen:  int(c.u32("max length")),
		DType:   ActivationDType(c.u8("dtype")),
	}
	copy(f.Client[:], c.take(32, "client"))
	copy(f.Ticket[:], c.take(64, "ticket"))
	f.Model = slices.Clone(c.blob("model CID", 1, MaxModelCIDBytes))
	c.layers("", f.First, f.Last)
	if c.err == nil && f.MaxLen == 0 {
		c.fail("max length 0")
	}
	if c.err == nil && !f.DType.valid() {
		c.fail("unknown dtype %d", uint8(f.DType))
	}
	n := c.count("route tail", MaxTailHops, 2+1+2+2+2)
	if n > 0 {
		f.Tail = make([]RouteHop, n)
	}
	for i := range f.Tail {
		h := &f.Tail[i]
		h.Peer = string(c.blob("tail peer ID", 1, MaxPeerIDBytes))
		h.First = int(c.u16("tail first layer"))
		h.Last = int(c.u16("tail last layer"))
		c.layers("tail ", h.First, h.Last)
		na := c.count("tail addrs", MaxHopAddrs, 2+1)
		if na > 0 {
			h.Addrs = make([][]byte, na)
		}
		for j := range h.Addrs {
			h.Addrs[j] = slices.Clone(c.blob("tail addr", 1, MaxAddrBytes))
		}
		if c.err != nil {
			break
		}
	}
	return f
}

func (r *FrameReader) decodeForward(c *cursor) Frame {
	f := &r.fwd
	*f = ForwardFrame{Session: c.session(), Pos: int(c.u32("position"))}
	n := uint64(c.u32("row count"))
	flags := c.u8("flags")
	f.Kind = ForwardKind(c.u8("kind"))
	if c.err != nil {
		return f
	}
	if flags&^(flagNoResult|flagTopK) != 0 {
		c.fail("unknown flags %#x", flags)
		return f
	}
	f.NoResult = flags&flagNoResult != 0
	if flags&flagTopK != 0 {
		f.TopK = int(c.u32("top k"))
		if c.err == nil && f.TopK == 0 {
			c.fail("top k of 0")
			return f
		}
	}
	if n == 0 {
		c.fail("Forward of 0 rows")
		return f
	}
	switch f.Kind {
	case KindTokens:
		if uint64(len(c.p)) != 4*n {
			c.fail("%d tokens need %d bytes, payload has %d", n, 4*n, len(c.p))
			return f
		}
		r.i32 = grown(r.i32, int(n))
		f.Tokens = r.i32[:n:n]
		getI32s(f.Tokens, c.rest())
	case KindActivations:
		f.DType = ActivationDType(c.u8("dtype"))
		w := uint64(c.u32("width"))
		f.Width = int(w)
		if c.err != nil {
			return f
		}
		if !f.DType.valid() {
			c.fail("unknown dtype %d", uint8(f.DType))
			return f
		}
		size := uint64(f.DType.Size())
		// Compare by division first: n×width×size may not fit in 64 bits.
		have := uint64(len(c.p))
		if w == 0 || n > have/w || n*w*size != have {
			c.fail("%d rows × width %d of %s do not fill %d bytes", n, w, f.DType, have)
			return f
		}
		r.f32 = grown(r.f32, int(n*w))
		f.Acts = r.f32[: n*w : n*w]
		if f.DType == ActF16 {
			getF16s(f.Acts, c.rest())
		} else {
			getF32s(f.Acts, c.rest())
		}
	default:
		c.fail("unknown kind %d", uint8(f.Kind))
	}
	return f
}

func (r *FrameReader) decodeResult(c *cursor) Frame {
	f := &r.res
	*f = ResultFrame{Session: c.session(), Pos: int(c.u32("position"))}
	v := uint64(c.u32("vocab"))
	n := uint64(c.u32("count"))
	if c.err != nil {
		return f
	}
	f.Vocab = int(v)
	per := uint64(4)
	if n < v {
		per = 8
	}
	if v == 0 || n == 0 || n > v || uint64(len(c.p)) != per*n {
		c.fail("%d of a vocabulary of %d logits do not fill %d bytes", n, v, len(c.p))
		return f
	}
	if n < v {
		r.i32 = grown(r.i32, int(n))
		f.IDs = r.i32[:n:n]
		getI32s(f.IDs, c.take(int(4*n), "ids"))
		for _, id := range f.IDs {
			if id < 0 || uint64(id) >= v {
				c.fail("token id %d outside the vocabulary of %d", id, v)
				return f
			}
		}
	}
	r.f32 = grown(r.f32, int(n))
	f.Logits = r.f32[:n:n]
	getF32s(f.Logits, c.rest())
	return f
}

func (r *FrameReader) decodeError(c *cursor) Frame {
	f := &r.errf
	*f = ErrorFrame{
		Session: c.session(),
		Code:    ErrorCode(c.u16("code")),
		Hop:     int(c.u16("hop")),
	}
	f.Peer = string(c.blob("peer ID", 0, MaxPeerIDBytes))
	f.Message = string(c.blob("message", 0, MaxMessageBytes))
	if c.err == nil && f.Code == 0 {
		c.fail("error code 0")
	}
	return f
}

// cursor reads a payload front to back. The first problem sticks in err, after
// which every read returns zero values, so decoders check once, at the end.
type cursor struct {
	p   []byte
	typ FrameType
	// name, when set, names the message in errors instead of typ: another
	// protocol's message read with the same cursor.
	name string
	err  error
}

func (c *cursor) fail(format string, args ...any) {
	if c.err == nil {
		name := c.typ.String()
		if c.name != "" {
			name = c.name
		}
		c.err = badFrame("%s: %s", name, fmt.Sprintf(format, args...))
	}
}

func (c *cursor) take(n int, field string) []byte {
	if c.err != nil {
		return nil
	}
	if n > len(c.p) {
		c.fail("payload ends inside %s: %d bytes needed, %d left", field, n, len(c.p))
		return nil
	}
	b := c.p[:n:n]
	c.p = c.p[n:]
	return b
}

func (c *cursor) u8(field string) uint8 {
	if b := c.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (c *cursor) u16(field string) uint16 {
	if b := c.take(2, field); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (c *cursor) u32(field string) uint32 {
	if b := c.take(4, field); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (c *cursor) session() (s SessionID) {
	copy(s[:], c.take(sessionLen, "session ID"))
	return s
}

// blob reads a u16-length-prefixed byte string of min to max bytes.
func (c *cursor) blob(field string, min, max int) []byte {
	n := int(c.u16(field))
	if c.err == nil && (n < min || n > max) {
		c.fail("%s of %d bytes, want %d to %d", field, n, min, max)
	}
	return c.take(n, field)
}

// count reads a u16 element count of at most max elements, each at least minSize
// bytes, so a caller may allocate count elements: the payload can hold them.
func (c *cursor) count(field string, max, minSize int) int {
	n := int(c.u16(field))
	if c.err != nil {
		return 0
	}
	if n > max {
		c.fail("%s of %d entries exceeds %d", field, n, max)
		return 0
	}
	if n*minSize > len(c.p) {
		c.fail("%s of %d entries cannot fit in %d bytes", field, n, len(c.p))
		return 0
	}
	return n
}

func (c *cursor) layers(what string, first, last int) {
	if c.err == nil && first >= last {
		c.fail("%slayer range [%d, %d) is empty", what, first, last)
	}
}

// rest takes the remainder of the payload, which the caller has sized.
func (c *cursor) rest() []byte {
	b := c.p
	c.p = nil
	return b
}

func (c *cursor) end() error {
	if c.err == nil && len(c.p) != 0 {
		c.fail("%d trailing bytes", len(c.p))
	}
	return c.err
}

func (f *OpenFrame) appendPayload(b []byte) ([]byte, error) {
	switch {
	case len(f.Model) < 1 || len(f.Model) > MaxModelCIDBytes:
		return b, badFrame("Open: model CID of %d bytes, want 1 to %d", len(f.Model), MaxModelCIDBytes)
	case !fitsU16(f.Hop):
		return b, badFrame("Open: hop %d out of range", f.Hop)
	case !validLayers(f.First, f.Last):
		return b, badFrame("Open: layer range [%d, %d)", f.First, f.Last)
	case f.MaxLen < 1 || uint64(f.MaxLen) > math.MaxUint32:
		return b, badFrame("Open: max length %d", f.MaxLen)
	case !f.DType.valid():
		return b, badFrame("Open: unknown dtype %d", uint8(f.DType))
	case len(f.Tail) > MaxTailHops:
		return b, badFrame("Open: route tail of %d hops exceeds %d", len(f.Tail), MaxTailHops)
	}
	for i, h := range f.Tail {
		switch {
		case len(h.Peer) < 1 || len(h.Peer) > MaxPeerIDBytes:
			return b, badFrame("Open: tail hop %d: peer ID of %d bytes, want 1 to %d", i, len(h.Peer), MaxPeerIDBytes)
		case !validLayers(h.First, h.Last):
			return b, badFrame("Open: tail hop %d: layer range [%d, %d)", i, h.First, h.Last)
		case len(h.Addrs) > MaxHopAddrs:
			return b, badFrame("Open: tail hop %d: %d addrs exceed %d", i, len(h.Addrs), MaxHopAddrs)
		}
		for _, a := range h.Addrs {
			if len(a) < 1 || len(a) > MaxAddrBytes {
				return b, badFrame("Open: tail hop %d: addr of %d bytes, want 1 to %d", i, len(a), MaxAddrBytes)
			}
		}
	}
	b = append(b, f.Session[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(f.Hop))
	b = binary.LittleEndian.AppendUint16(b, uint16(f.First))
	b = binary.LittleEndian.AppendUint16(b, uint16(f.Last))
	b = binary.LittleEndian.AppendUint32(b, uint32(f.MaxLen))
	b = append(b, byte(f.DType))
	b = append(b, f.Client[:]...)
	b = append(b, f.Ticket[:]...)
	b = appendBlob(b, f.Model)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Tail)))
	for _, h := range f.Tail {
		b = appendBlob(b, []byte(h.Peer))
		b = binary.LittleEndian.AppendUint16(b, uint16(h.First))
		b = binary.LittleEndian.AppendUint16(b, uint16(h.Last))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h.Addrs)))
		for _, a := range h.Addrs {
			b = appendBlob(b, a)
		}
	}
	return b, nil
}

func (f *ReadyFrame) appendPayload(b []byte) ([]byte, error) { return append(b, f.Session[:]...), nil }

func (f *CloseFrame) appendPayload(b []byte) ([]byte, error) { return append(b, f.Session[:]...), nil }

func (f *AttachFrame) appendPayload(b []byte) ([]byte, error) { return append(b, f.Session[:]...), nil }

func (f *ForwardFrame) appendPayload(b []byte) ([]byte, error) {
	if f.Pos < 0 || uint64(f.Pos) > math.MaxUint32 {
		return b, badFrame("Forward: position %d out of range", f.Pos)
	}
	var flags byte
	if f.NoResult {
		flags |= flagNoResult
	}
	if f.TopK < 0 || uint64(f.TopK) > math.MaxUint32 {
		return b, badFrame("Forward: top k %d", f.TopK)
	}
	if f.TopK > 0 {
		flags |= flagTopK
	}
	switch f.Kind {
	case KindTokens:
		switch {
		case len(f.Tokens) == 0 || uint64(len(f.Tokens)) > math.MaxUint32:
			return b, badFrame("Forward: %d tokens", len(f.Tokens))
		case len(f.Acts) != 0:
			return b, badFrame("Forward: tokens frame also holds activations")
		}
		b = appendForwardHead(b, f, uint32(len(f.Tokens)), flags)
		return appendI32s(b, f.Tokens), nil
	case KindActivations:
		rows := 0
		if f.Width > 0 {
			rows = len(f.Acts) / f.Width
		}
		switch {
		case f.Width < 1 || uint64(f.Width) > math.MaxUint32:
			return b, badFrame("Forward: width %d", f.Width)
		case rows == 0 || rows*f.Width != len(f.Acts) || uint64(rows) > math.MaxUint32:
			return b, badFrame("Forward: %d activations are not whole rows of %d", len(f.Acts), f.Width)
		case !f.DType.valid():
			return b, badFrame("Forward: unknown dtype %d", uint8(f.DType))
		case len(f.Tokens) != 0:
			return b, badFrame("Forward: activations frame also holds tokens")
		}
		b = appendForwardHead(b, f, uint32(rows), flags)
		b = append(b, byte(f.DType))
		b = binary.LittleEndian.AppendUint32(b, uint32(f.Width))
		if f.DType == ActF16 {
			return appendF16s(b, f.Acts), nil
		}
		return appendF32s(b, f.Acts), nil
	}
	return b, badFrame("Forward: unknown kind %d", uint8(f.Kind))
}

func appendForwardHead(b []byte, f *ForwardFrame, rows uint32, flags byte) []byte {
	b = append(b, f.Session[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(f.Pos))
	b = binary.LittleEndian.AppendUint32(b, rows)
	b = append(b, flags, byte(f.Kind))
	if f.TopK > 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(f.TopK))
	}
	return b
}

func (f *ResultFrame) appendPayload(b []byte) ([]byte, error) {
	n := len(f.Logits)
	switch {
	case f.Pos < 0 || uint64(f.Pos) > math.MaxUint32:
		return b, badFrame("Result: position %d out of range", f.Pos)
	case f.Vocab <= 0 || uint64(f.Vocab) > math.MaxUint32:
		return b, badFrame("Result: vocabulary of %d", f.Vocab)
	case n == 0 || n > f.Vocab:
		return b, badFrame("Result: %d logits for a vocabulary of %d", n, f.Vocab)
	case f.IDs == nil && n != f.Vocab:
		return b, badFrame("Result: %d dense logits for a vocabulary of %d", n, f.Vocab)
	case f.IDs != nil && (len(f.IDs) != n || n == f.Vocab):
		return b, badFrame("Result: %d ids for %d logits of a vocabulary of %d", len(f.IDs), n, f.Vocab)
	}
	for _, id := range f.IDs {
		if id < 0 || int(id) >= f.Vocab {
			return b, badFrame("Result: token id %d outside the vocabulary of %d", id, f.Vocab)
		}
	}
	b = append(b, f.Session[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(f.Pos))
	b = binary.LittleEndian.AppendUint32(b, uint32(f.Vocab))
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	if f.IDs != nil {
		b = appendI32s(b, f.IDs)
	}
	return appendF32s(b, f.Logits), nil
}

func (f *ErrorFrame) appendPayload(b []byte) ([]byte, error) {
	switch {
	case f.Code == 0:
		return b, badFrame("Error: code 0")
	case !fitsU16(f.Hop):
		return b, badFrame("Error: hop %d out of range", f.Hop)
	case len(f.Peer) > MaxPeerIDBytes:
		return b, badFrame("Error: peer ID of %d bytes exceeds %d", len(f.Peer), MaxPeerIDBytes)
	}
	b = append(b, f.Session[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(f.Code))
	b = binary.LittleEndian.AppendUint16(b, uint16(f.Hop))
	b = appendBlob(b, []byte(f.Peer))
	return appendBlob(b, []byte(cutUTF8(f.Message, MaxMessageBytes))), nil
}

// cutUTF8 shortens s to at most n bytes without splitting a character (unless s is
// not UTF-8 there anyway).
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > 0 && n-i < utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

func fitsU16(v int) bool { return v >= 0 && v <= math.MaxUint16 }

func validLayers(first, last int) bool { return fitsU16(first) && fitsU16(last) && first < last }

func appendBlob(b, s []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// grown returns s resized to n, reallocating only when it lacks capacity: the
// contents are about to be overwritten.
func grown[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// extend appends n bytes to b and returns the result and the new bytes.
func extend(b []byte, n int) ([]byte, []byte) {
	b = slices.Grow(b, n)
	l := len(b)
	b = b[:l+n]
	return b, b[l:]
}

// hostLittleEndian says whether the wire's byte order is the machine's, in which
// case f32 and int32 arrays move by copy instead of value by value. Every target
// imece builds for is little-endian; the loops keep the code correct elsewhere.
func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// asBytes views a slice of 4-byte values as its bytes (always aligned, unlike the
// reverse view).
func asBytes[T float32 | int32](s []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s))
}

func getF32s(dst []float32, src []byte) {
	if hostLittleEndian() {
		copy(asBytes(dst), src)
		return
	}
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func getI32s(dst []int32, src []byte) {
	if hostLittleEndian() {
		copy(asBytes(dst), src)
		return
	}
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func getF16s(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = kernels.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func appendF32s(b []byte, s []float32) []byte {
	if hostLittleEndian() {
		return append(b, asBytes(s)...)
	}
	b, d := extend(b, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(v))
	}
	return b
}

func appendI32s(b []byte, s []int32) []byte {
	if hostLittleEndian() {
		return append(b, asBytes(s)...)
	}
	b, d := extend(b, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(d[4*i:], uint32(v))
	}
	return b
}

func appendF16s(b []byte, s []float32) []byte {
	b, d := extend(b, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(d[2*i:], kernels.F32ToF16(v))
	}
	return b
}
