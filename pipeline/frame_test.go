package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

var testSession = SessionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// validFrames has one frame of each type, and the variants of the types that have
// them; the fuzz corpus is seeded from it.
func validFrames() map[string]Frame {
	acts := make([]float32, 3*4)
	for i := range acts {
		acts[i] = float32(i)*0.25 - 1
	}
	return map[string]Frame{
		"open": &OpenFrame{
			Session: testSession, Model: []byte{0x01, 0x55, 0x12, 0x20, 0xaa}, Hop: 1,
			First: 4, Last: 12, MaxLen: 2048, DType: ActF16,
			Tail: []RouteHop{
				{Hop: Hop{Peer: "peer-b", First: 12, Last: 20}, Addrs: [][]byte{{4, 127, 0, 0, 1}, {41, 1}}},
				{Hop: Hop{Peer: "peer-c", First: 20, Last: 22}},
			},
		},
		"open-last-hop": &OpenFrame{Session: testSession, Model: []byte{1}, First: 0, Last: 1, MaxLen: 1},
		"ready":         &ReadyFrame{Session: testSession},
		"forward-tokens": &ForwardFrame{
			Session: testSession, Pos: 0, Kind: KindTokens, Tokens: []int32{1, 15043, -1, math.MaxInt32},
		},
		"forward-f32": &ForwardFrame{
			Session: testSession, Pos: 7, Kind: KindActivations, Acts: acts, Width: 4, DType: ActF32,
		},
		"forward-f16-noresult": &ForwardFrame{
			Session: testSession, Pos: math.MaxUint32, NoResult: true, Kind: KindActivations,
			Acts: acts, Width: 3, DType: ActF16,
		},
		"result":        &ResultFrame{Session: testSession, Pos: 9, Vocab: 4, Logits: []float32{-1, 0, 3.5, float32(math.Inf(1))}},
		"result top-k":  &ResultFrame{Session: testSession, Pos: 9, Vocab: 32000, IDs: []int32{31999, 7}, Logits: []float32{3.5, -1}},
		"forward top-k": &ForwardFrame{Session: testSession, Pos: 3, Kind: KindTokens, Tokens: []int32{5}, TopK: 40},
		"error": &ErrorFrame{
			Session: testSession, Code: CodeHopFailed, Hop: 2, Peer: "peer-c", Message: "dial: connection refused",
		},
		"error-unknown-code": &ErrorFrame{Session: testSession, Code: 999},
		"close":              &CloseFrame{Session: testSession},
		"attach":             &AttachFrame{Session: testSession},
	}
}

func mustAppend(t testing.TB, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	if err != nil {
		t.Fatalf("encode %s: %v", f.Type(), err)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	for name, f := range validFrames() {
		t.Run(name, func(t *testing.T) {
			var stream bytes.Buffer
			w := NewFrameWriter(&stream)
			for range 2 {
				if err := w.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFrame(&stream, f); err != nil {
				t.Fatal(err)
			}
			one := mustAppend(t, f)
			if !bytes.Equal(stream.Bytes(), bytes.Repeat(one, 3)) {
				t.Fatal("FrameWriter, WriteFrame and AppendFrame disagree")
			}
			if got := binary.LittleEndian.Uint32(one); int(got) != len(one)-4 {
				t.Fatalf("length field %d, frame has %d bytes after it", got, len(one)-4)
			}
			r := NewFrameReader(&stream, len(one)-4)
			for i := range 3 {
				got, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !frameEqual(got, f) {
					t.Fatalf("frame %d: got %+v, want %+v", i, got, f)
				}
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
			got, err := ReadFrame(bytes.NewReader(one), len(one)-4)
			if err != nil || !frameEqual(got, f) {
				t.Fatalf("ReadFrame: %+v, %v", got, err)
			}
		})
	}
}

func TestForwardFrameF16(t *testing.T) {
	in := []float32{0, 1, -2.5, 65504, 1e6, 1.0 / 3, 6e-8, float32(math.Inf(-1))}
	f := &ForwardFrame{Session: testSession, Kind: KindActivations, Acts: in, Width: 2, DType: ActF16}
	b := mustAppend(t, f)
	if want := ForwardFrameLen(4, 2, ActF16); len(b) != want {
		t.Fatalf("%d bytes, want %d", len(b), want)
	}
	got, err := ReadFrame(bytes.NewReader(b), len(b))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.(*ForwardFrame).Acts {
		if want := kernels.F16ToF32(kernels.F32ToF16(in[i])); math.Float32bits(v) != math.Float32bits(want) {
			t.Errorf("value %d: %v became %v, want %v", i, in[i], v, want)
		}
	}
}

func TestFrameLengthHelpers(t *testing.T) {
	acts := make([]float32, 5*7)
	for _, tc := range []struct {
		f    Frame
		want int
	}{
		{&ForwardFrame{Kind: KindActivations, Acts: acts, Width: 7, TopK: 1}, ForwardFrameLen(5, 7, ActF32)},
		{&ForwardFrame{Kind: KindActivations, Acts: acts, Width: 7, DType: ActF16, TopK: 1}, ForwardFrameLen(5, 7, ActF16)},
		{&ForwardFrame{Kind: KindTokens, Tokens: make([]int32, 5), TopK: 9}, ForwardFrameLen(5, 0, ActF32)},
		{&ResultFrame{Vocab: 11, Logits: make([]float32, 11)}, ResultFrameLen(11)},
		{largestOpen(), MaxOpenFrameLen},
		{&ErrorFrame{Code: CodeInternal, Peer: strings.Repeat("p", MaxPeerIDBytes), Message: strings.Repeat("m", MaxMessageBytes)}, MaxErrorFrameLen},
	} {
		if got := len(mustAppend(t, tc.f)) - 4; got != tc.want {
			t.Errorf("%s frame of length %d, helper says %d", tc.f.Type(), got, tc.want)
		}
	}
}

func largestOpen() *OpenFrame {
	addrs := make([][]byte, MaxHopAddrs)
	for i := range addrs {
		addrs[i] = bytes.Repeat([]byte{byte(i)}, MaxAddrBytes)
	}
	tail := make([]RouteHop, MaxTailHops)
	for i := range tail {
		tail[i] = RouteHop{Hop: Hop{Peer: strings.Repeat("q", MaxPeerIDBytes), First: i, Last: i + 1}, Addrs: addrs}
	}
	return &OpenFrame{Model: make([]byte, MaxModelCIDBytes), First: 0, Last: 1, MaxLen: 1, Tail: tail}
}

// le builds little-endian payloads for malformed frames: uint8, uint16, uint32,
// []byte, string and SessionID parts, concatenated.
func le(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case uint8:
			b = append(b, v)
		case uint16:
			b = binary.LittleEndian.AppendUint16(b, v)
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case []byte:
			b = append(b, v...)
		case string:
			b = append(b, v...)
		case SessionID:
			b = append(b, v[:]...)
		default:
			panic("le: unsupported part")
		}
	}
	return b
}

// raw wraps a payload in a length prefix, version and type.
func raw(version uint8, typ FrameType, payload []byte) []byte {
	return le(uint32(2+len(payload)), version, uint8(typ), payload)
}

func TestReadFrameRejects(t *testing.T) {
	s := testSession
	u8, u16, u32 := func(v int) uint8 { return uint8(v) }, func(v int) uint16 { return uint16(v) }, func(v int) uint32 { return uint32(v) }
	hop := func(peer string, first, last int, addrs ...[]byte) []byte {
		b := le(u16(len(peer)), peer, u16(first), u16(last), u16(len(addrs)))
		for _, a := range addrs {
			b = le(b, u16(len(a)), a)
		}
		return b
	}
	open := func(cid []byte, first, last, maxLen, dtype int, tail ...[]byte) []byte {
		b := le(s, u16(0), u16(first), u16(last), u32(maxLen), u8(dtype), make([]byte, 96), u16(len(cid)), cid, u16(len(tail)))
		for _, h := range tail {
			b = append(b, h...)
		}
		return raw(1, FrameTypeOpen, b)
	}
	cid := []byte{1, 2, 3}
	fwdHead := func(n, flags, kind int) []byte { return le(s, u32(0), u32(n), u8(flags), u8(kind)) }
	manyHops := make([][]byte, MaxTailHops+1)
	for i := range manyHops {
		manyHops[i] = hop("p", 0, 1)
	}
	manyAddrs := make([][]byte, MaxHopAddrs+1)
	for i := range manyAddrs {
		manyAddrs[i] = []byte{4}
	}

	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", le(u32(0)), ErrBadFrame},
		{"length 1", le(u32(1), u8(1)), ErrBadFrame},
		{"oversize length", le(u32(1<<20 + 1)), ErrFrameTooLarge},
		{"max u32 length", le(u32(math.MaxUint32)), ErrFrameTooLarge},
		{"version 0", raw(0, FrameTypeClose, le(s)), ErrFrameVersion},
		{"version 2", raw(2, FrameTypeClose, le(s)), ErrFrameVersion},
		{"version 2 is bad", raw(2, FrameTypeClose, le(s)), ErrBadFrame},
		{"type 0", raw(1, 0, le(s)), ErrFrameType},
		{"type 8", raw(1, 8, le(s)), ErrFrameType},
		{"type 255 is bad", raw(1, 255, le(s)), ErrBadFrame},
		{"close trailing", raw(1, FrameTypeClose, le(s, u8(0))), ErrBadFrame},
		{"ready short session", raw(1, FrameTypeReady, s[:15]), ErrBadFrame},
		{"empty payload", raw(1, FrameTypeClose, nil), ErrBadFrame},

		{"open minimal is fine", open(cid, 0, 1, 1, 0), nil},
		{"open empty cid", open(nil, 0, 1, 1, 0), ErrBadFrame},
		{"open cid at limit", open(make([]byte, MaxModelCIDBytes), 0, 1, 1, 0), nil},
		{"open cid too long", open(make([]byte, MaxModelCIDBytes+1), 0, 1, 1, 0), ErrBadFrame},
		{"open empty range", open(cid, 3, 3, 1, 0), ErrBadFrame},
		{"open reversed range", open(cid, 4, 3, 1, 0), ErrBadFrame},
		{"open max len 0", open(cid, 0, 1, 0, 0), ErrBadFrame},
		{"open dtype 2", open(cid, 0, 1, 1, 2), ErrBadFrame},
		{"open tail at limit", open(cid, 0, 1, 1, 0, manyHops[:MaxTailHops]...), nil},
		{"open too many hops", open(cid, 0, 1, 1, 0, manyHops...), ErrBadFrame},
		{"open tail count past payload", raw(1, FrameTypeOpen, le(s, u16(0), u16(0), u16(1), u32(1), u8(0), u16(1), u8(1), u16(200))), ErrBadFrame},
		{"open tail peer empty", open(cid, 0, 1, 1, 0, hop("", 1, 2)), ErrBadFrame},
		{"open tail peer at limit", open(cid, 0, 1, 1, 0, hop(strings.Repeat("p", MaxPeerIDBytes), 1, 2)), nil},
		{"open tail peer too long", open(cid, 0, 1, 1, 0, hop(strings.Repeat("p", MaxPeerIDBytes+1), 1, 2)), ErrBadFrame},
		{"open tail empty range", open(cid, 0, 1, 1, 0, hop("p", 2, 2)), ErrBadFrame},
		{"open addrs at limit", open(cid, 0, 1, 1, 0, hop("p", 1, 2, manyAddrs[:MaxHopAddrs]...)), nil},
		{"open too many addrs", open(cid, 0, 1, 1, 0, hop("p", 1, 2, manyAddrs...)), ErrBadFrame},
		{"open addr empty", open(cid, 0, 1, 1, 0, hop("p", 1, 2, []byte{})), ErrBadFrame},
		{"open addr at limit", open(cid, 0, 1, 1, 0, hop("p", 1, 2, make([]byte, MaxAddrBytes))), nil},
		{"open addr too long", open(cid, 0, 1, 1, 0, hop("p", 1, 2, make([]byte, MaxAddrBytes+1))), ErrBadFrame},
		{"open trailing", raw(1, FrameTypeOpen, le(open(cid, 0, 1, 1, 0)[6:], u8(0))), ErrBadFrame},

		{"forward tokens fine", raw(1, FrameTypeForward, le(fwdHead(2, 0, 0), u32(1), u32(2))), nil},
		{"forward zero rows", raw(1, FrameTypeForward, le(fwdHead(0, 0, 0))), ErrBadFrame},
		{"forward tokens short", raw(1, FrameTypeForward, le(fwdHead(2, 0, 0), u32(1))), ErrBadFrame},
		{"forward tokens long", raw(1, FrameTypeForward, le(fwdHead(1, 0, 0), u32(1), u32(2))), ErrBadFrame},
		{"forward tokens count overflows", raw(1, FrameTypeForward, le(fwdHead(math.MaxUint32, 0, 0), u32(1))), ErrBadFrame},
		{"forward unknown flag", raw(1, FrameTypeForward, le(fwdHead(1, 2, 0), u32(1))), ErrBadFrame},
		{"forward unknown kind", raw(1, FrameTypeForward, le(fwdHead(1, 0, 2), u32(1))), ErrBadFrame},
		{"forward acts fine", raw(1, FrameTypeForward, le(fwdHead(2, 1, 1), u8(0), u32(1), u32(0), u32(0))), nil},
		{"forward acts f16 fine", raw(1, FrameTypeForward, le(fwdHead(2, 0, 1), u8(1), u32(1), u32(0))), nil},
		{"forward acts rows×width mismatch", raw(1, FrameTypeForward, le(fwdHead(2, 0, 1), u8(0), u32(2), u32(0), u32(0))), ErrBadFrame},
		{"forward acts f16 sized as f32", raw(1, FrameTypeForward, le(fwdHead(2, 0, 1), u8(1), u32(1), u32(0), u32(0))), ErrBadFrame},
		{"forward acts width 0", raw(1, FrameTypeForward, le(fwdHead(2, 0, 1), u8(0), u32(0))), ErrBadFrame},
		{"forward acts counts overflow", raw(1, FrameTypeForward, le(fwdHead(math.MaxUint32, 0, 1), u8(0), u32(math.MaxUint32), u32(0))), ErrBadFrame},
		{"forward acts product wraps to payload", raw(1, FrameTypeForward, le(fwdHead(1<<31, 0, 1), u8(0), u32(1<<31), u32(0))), ErrBadFrame},
		{"forward acts dtype 2", raw(1, FrameTypeForward, le(fwdHead(1, 0, 1), u8(2), u32(1), u32(0))), ErrBadFrame},
		{"forward head cut", raw(1, FrameTypeForward, le(s, u32(0), u32(1))), ErrBadFrame},

		{"result fine", raw(1, FrameTypeResult, le(s, u32(0), u32(1), u32(1), u32(0))), nil},
		{"result sparse fine", raw(1, FrameTypeResult, le(s, u32(0), u32(9), u32(1), u32(8), u32(0))), nil},
		{"result vocab 0", raw(1, FrameTypeResult, le(s, u32(0), u32(0), u32(0))), ErrBadFrame},
		{"result count 0", raw(1, FrameTypeResult, le(s, u32(0), u32(3), u32(0))), ErrBadFrame},
		{"result count past vocab", raw(1, FrameTypeResult, le(s, u32(0), u32(1), u32(2), u32(0), u32(0))), ErrBadFrame},
		{"result vocab mismatch", raw(1, FrameTypeResult, le(s, u32(0), u32(2), u32(2), u32(0))), ErrBadFrame},
		{"result id past vocab", raw(1, FrameTypeResult, le(s, u32(0), u32(9), u32(1), u32(9), u32(0))), ErrBadFrame},
		{"result negative id", raw(1, FrameTypeResult, le(s, u32(0), u32(9), u32(1), u32(math.MaxUint32), u32(0))), ErrBadFrame},
		{"result vocab overflows", raw(1, FrameTypeResult, le(s, u32(0), u32(math.MaxUint32), u32(math.MaxUint32), u32(0))), ErrBadFrame},
		{"forward top-k 0", raw(1, FrameTypeForward, le(s, u32(0), u32(1), u8(2), u8(0), u32(0), u32(5))), ErrBadFrame},

		{"error fine", raw(1, FrameTypeError, le(s, u16(1), u16(0), u16(0), u16(0))), nil},
		{"error code 0", raw(1, FrameTypeError, le(s, u16(0), u16(0), u16(0), u16(0))), ErrBadFrame},
		{"error peer too long", raw(1, FrameTypeError, le(s, u16(7), u16(0), u16(MaxPeerIDBytes+1), make([]byte, MaxPeerIDBytes+1), u16(0))), ErrBadFrame},
		{"error message at limit", raw(1, FrameTypeError, le(s, u16(7), u16(0), u16(0), u16(MaxMessageBytes), make([]byte, MaxMessageBytes))), nil},
		{"error message too long", raw(1, FrameTypeError, le(s, u16(7), u16(0), u16(0), u16(MaxMessageBytes+1), make([]byte, MaxMessageBytes+1))), ErrBadFrame},
		{"error message cut", raw(1, FrameTypeError, le(s, u16(7), u16(0), u16(0), u16(5), "abc")), ErrBadFrame},
		{"error trailing", raw(1, FrameTypeError, le(s, u16(7), u16(0), u16(0), u16(0), u8(0))), ErrBadFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrame(bytes.NewReader(tc.in), 1<<20)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid frame rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (frame %v), want %v", err, f, tc.want)
			}
			if f != nil {
				t.Fatalf("a frame (%v) with the error", f)
			}
		})
	}
}

// TestReadFrameTruncated cuts every valid frame at every byte, in two ways: the
// stream ends there (the peer died), or the length field says the frame ends there
// (the peer is broken).
func TestReadFrameTruncated(t *testing.T) {
	for name, f := range validFrames() {
		b := mustAppend(t, f)
		for n := range len(b) {
			_, err := ReadFrame(bytes.NewReader(b[:n]), len(b))
			want := io.ErrUnexpectedEOF
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Errorf("%s cut at %d of %d bytes: %v, want %v", name, n, len(b), err, want)
			}
		}
		for n := 4; n < len(b); n++ {
			short := slices.Clone(b[:n])
			binary.LittleEndian.PutUint32(short, uint32(n-4))
			if _, err := ReadFrame(bytes.NewReader(short), len(b)); !errors.Is(err, ErrBadFrame) {
				t.Errorf("%s with length %d of %d: %v, want ErrBadFrame", name, n-4, len(b)-4, err)
			}
		}
	}
}

// TestReadFrameRefusesBeforeAllocating: a length above the limit is refused from the
// four bytes of the length field alone, with nothing allocated for the body.
func TestReadFrameRefusesBeforeAllocating(t *testing.T) {
	in := bytes.NewReader(nil)
	hdr := le(uint32(math.MaxUint32), "rest of a frame we never read")
	r := NewFrameReader(in, 1<<10)
	in.Reset(hdr)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if cap(r.buf) != 0 {
		t.Fatalf("buffer of %d bytes allocated for a refused frame", cap(r.buf))
	}
	if in.Len() != len(hdr)-4 {
		t.Fatalf("read %d bytes past the length field", len(hdr)-4-in.Len())
	}
	// Negative limits refuse everything rather than wrap around.
	r.SetMax(-1)
	in.Reset(mustAppend(t, &CloseFrame{}))
	if _, err := r.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("negative limit: %v", err)
	}
}

func TestFrameReaderLimit(t *testing.T) {
	b := mustAppend(t, validFrames()["forward-f32"])
	if _, err := ReadFrame(bytes.NewReader(b), len(b)-4); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(b), len(b)-5); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame one byte over the limit: %v", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadFramePassesTransportErrors(t *testing.T) {
	boom := errors.New("stream reset")
	if _, err := ReadFrame(failingReader{boom}, 1<<10); err != boom {
		t.Fatalf("got %v, want the transport's error", err)
	}
	body := io.MultiReader(bytes.NewReader(le(uint32(18))), failingReader{boom})
	if _, err := ReadFrame(body, 1<<10); err != boom {
		t.Fatalf("inside a frame: got %v, want the transport's error", err)
	}
}

func TestAppendFrameRejects(t *testing.T) {
	okOpen := func(edit func(*OpenFrame)) Frame {
		f := &OpenFrame{Model: []byte{1}, First: 0, Last: 1, MaxLen: 1}
		edit(f)
		return f
	}
	okHop := RouteHop{Hop: Hop{Peer: "p", First: 1, Last: 2}}
	for _, tc := range []struct {
		name string
		f    Frame
	}{
		{"nil", nil},
		{"open no cid", okOpen(func(f *OpenFrame) { f.Model = nil })},
		{"open long cid", okOpen(func(f *OpenFrame) { f.Model = make([]byte, MaxModelCIDBytes+1) })},
		{"open hop", okOpen(func(f *OpenFrame) { f.Hop = math.MaxUint16 + 1 })},
		{"open negative hop", okOpen(func(f *OpenFrame) { f.Hop = -1 })},
		{"open empty range", okOpen(func(f *OpenFrame) { f.First, f.Last = 2, 2 })},
		{"open layer too large", okOpen(func(f *OpenFrame) { f.Last = math.MaxUint16 + 1 })},
		{"open max len", okOpen(func(f *OpenFrame) { f.MaxLen = 0 })},
		{"open max len too large", okOpen(func(f *OpenFrame) { f.MaxLen = math.MaxUint32 + 1 })},
		{"open dtype", okOpen(func(f *OpenFrame) { f.DType = 9 })},
		{"open long tail", okOpen(func(f *OpenFrame) { f.Tail = make([]RouteHop, MaxTailHops+1) })},
		{"open tail peer", okOpen(func(f *OpenFrame) { f.Tail = []RouteHop{{Hop: Hop{First: 1, Last: 2}}} })},
		{"open tail range", okOpen(func(f *OpenFrame) { f.Tail = []RouteHop{{Hop: Hop{Peer: "p", First: 2, Last: 1}}} })},
		{"open tail addrs", okOpen(func(f *OpenFrame) { h := okHop; h.Addrs = make([][]byte, MaxHopAddrs+1); f.Tail = []RouteHop{h} })},
		{"open tail addr", okOpen(func(f *OpenFrame) { h := okHop; h.Addrs = [][]byte{{}}; f.Tail = []RouteHop{h} })},
		{"forward no tokens", &ForwardFrame{Kind: KindTokens}},
		{"forward tokens and acts", &ForwardFrame{Kind: KindTokens, Tokens: []int32{1}, Acts: []float32{1}}},
		{"forward acts and tokens", &ForwardFrame{Kind: KindActivations, Tokens: []int32{1}, Acts: []float32{1}, Width: 1}},
		{"forward no width", &ForwardFrame{Kind: KindActivations, Acts: []float32{1}}},
		{"forward partial row", &ForwardFrame{Kind: KindActivations, Acts: []float32{1, 2, 3}, Width: 2}},
		{"forward no acts", &ForwardFrame{Kind: KindActivations, Width: 2}},
		{"forward dtype", &ForwardFrame{Kind: KindActivations, Acts: []float32{1}, Width: 1, DType: 3}},
		{"forward kind", &ForwardFrame{Kind: 5, Tokens: []int32{1}}},
		{"forward pos", &ForwardFrame{Kind: KindTokens, Tokens: []int32{1}, Pos: -1}},
		{"result no logits", &ResultFrame{Vocab: 3}},
		{"result pos", &ResultFrame{Vocab: 1, Logits: []float32{1}, Pos: math.MaxUint32 + 1}},
		{"result dense short", &ResultFrame{Vocab: 3, Logits: []float32{1}}},
		{"result ids mismatch", &ResultFrame{Vocab: 3, IDs: []int32{1, 2}, Logits: []float32{1}}},
		{"result id past vocab", &ResultFrame{Vocab: 3, IDs: []int32{3}, Logits: []float32{1}}},
		{"forward negative top-k", &ForwardFrame{Kind: KindTokens, Tokens: []int32{1}, TopK: -1}},
		{"error code 0", &ErrorFrame{}},
		{"error hop", &ErrorFrame{Code: CodeBusy, Hop: -1}},
		{"error peer", &ErrorFrame{Code: CodeBusy, Peer: strings.Repeat("p", MaxPeerIDBytes+1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			b, err := AppendFrame(prefix, tc.f)
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("got %v, want ErrBadFrame", err)
			}
			if string(b) != "kept" {
				t.Fatalf("dst changed to %q", b)
			}
			if err := NewFrameWriter(io.Discard).WriteFrame(tc.f); !errors.Is(err, ErrBadFrame) {
				t.Fatalf("FrameWriter: got %v, want ErrBadFrame", err)
			}
		})
	}
}

func TestErrorFrameMessageIsCut(t *testing.T) {
	for _, tc := range []struct {
		msg, want string
	}{
		{strings.Repeat("a", MaxMessageBytes), strings.Repeat("a", MaxMessageBytes)},
		{strings.Repeat("a", MaxMessageBytes+5), strings.Repeat("a", MaxMessageBytes)},
		// A three-byte character straddling the limit goes whole.
		{strings.Repeat("a", MaxMessageBytes-1) + "€", strings.Repeat("a", MaxMessageBytes-1)},
		{strings.Repeat("a", MaxMessageBytes-3) + "€", strings.Repeat("a", MaxMessageBytes-3) + "€"},
	} {
		b := mustAppend(t, &ErrorFrame{Code: CodeInternal, Message: tc.msg})
		f, err := ReadFrame(bytes.NewReader(b), len(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.(*ErrorFrame).Message; got != tc.want {
			t.Errorf("message of %d bytes came back as %d bytes, want %d", len(tc.msg), len(got), len(tc.want))
		}
	}
}

// TestFrameReaderReuse: frames read later do not disturb what Open and Error frames
// hold, and reading a smaller frame after a larger one gives exactly its rows.
func TestFrameReaderReuse(t *testing.T) {
	frames := validFrames()
	var stream bytes.Buffer
	order := []string{"open", "forward-f32", "forward-tokens", "forward-f16-noresult", "error", "result", "forward-f32", "close"}
	for _, name := range order {
		stream.Write(mustAppend(t, frames[name]))
	}
	r := NewFrameReader(&stream, 1<<16)
	var open OpenFrame
	var errf ErrorFrame
	for _, name := range order {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if !frameEqual(f, frames[name]) {
			t.Fatalf("%s: got %+v", name, f)
		}
		switch f := f.(type) {
		case *OpenFrame:
			open = *f
		case *ErrorFrame:
			errf = *f
		}
	}
	if !frameEqual(&open, frames["open"]) || !frameEqual(&errf, frames["error"]) {
		t.Fatal("a kept Open or Error frame changed under later reads")
	}
}

func TestFrameStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{FrameTypeForward.String(), "Forward"},
		{FrameType(0).String(), "FrameType(0)"},
		{CodeHopFailed.String(), "hop failed"},
		{ErrorCode(77).String(), "ErrorCode(77)"},
		{ActF16.String(), "f16"},
		{KindActivations.String(), "activations"},
		{testSession.String(), "0102030405060708090a0b0c0d0e0f10"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestFrameCodecDoesNotAllocate: a decode step's frames, written and read through a
// FrameWriter and FrameReader, allocate nothing once the buffers have grown.
func TestFrameCodecDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"forward-f32", "forward-f16-noresult", "forward-tokens", "result", "close"} {
		f := validFrames()[name]
		var stream bytes.Buffer
		w := NewFrameWriter(&stream)
		r := NewFrameReader(&stream, 1<<16)
		step := func() {
			if err := w.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if n := testing.AllocsPerRun(100, step); n != 0 {
			t.Errorf("%s: %v allocations per frame", name, n)
		}
	}
}

func BenchmarkForwardFrame(b *testing.B) {
	const width = 2048
	acts := make([]float32, width)
	for i := range acts {
		acts[i] = float32(math.Sin(float64(i)))
	}
	for _, dt := range []ActivationDType{ActF32, ActF16} {
		f := &ForwardFrame{Session: testSession, Pos: 100, Kind: KindActivations, Acts: acts, Width: width, DType: dt}
		b.Run("encode-"+dt.String(), func(b *testing.B) {
			w := NewFrameWriter(io.Discard)
			b.SetBytes(int64(ForwardFrameLen(1, width, dt) + 4))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode-"+dt.String(), func(b *testing.B) {
			enc := mustAppend(b, f)
			in := bytes.NewReader(enc)
			r := NewFrameReader(in, len(enc))
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				in.Reset(enc)
				if _, err := r.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzReadFrame: no input makes the decoder panic or return an error outside the
// documented ones, and whatever decodes re-encodes canonically: to the same bytes
// (bar f16 NaN payloads, which come back quiet), which decode to the same frame,
// through the one-shot reader and the reusing one alike.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range validFrames() {
		f.Add(mustAppend(f, fr))
	}
	f.Add(le(uint32(0)))
	f.Add(raw(2, FrameTypeClose, le(testSession)))
	warm := mustAppend(f, validFrames()["forward-f32"])
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 16
		got, err := ReadFrame(bytes.NewReader(in), max)
		if err != nil {
			if got != nil {
				t.Fatalf("frame %v with error %v", got, err)
			}
			for _, known := range []error{ErrBadFrame, ErrFrameTooLarge, io.EOF, io.ErrUnexpectedEOF} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		enc, err := AppendFrame(nil, got)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", got, err)
		}
		if n := 4 + int(binary.LittleEndian.Uint32(in)); !bytes.Equal(enc, in[:n]) && !hasF16NaN(got) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", in[:n], enc)
		}
		again, err := ReadFrame(bytes.NewReader(enc), max)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !frameEqual(got, again) {
			t.Fatalf("round trip changed the frame:\n %+v\n %+v", got, again)
		}
		// The reusing reader, with a different frame decoded before, agrees.
		r := NewFrameReader(io.MultiReader(bytes.NewReader(warm), bytes.NewReader(enc)), max)
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		reused, err := r.ReadFrame()
		if err != nil || !frameEqual(got, reused) {
			t.Fatalf("FrameReader: %+v, %v", reused, err)
		}
	})
}

func hasF16NaN(f Frame) bool {
	fw, ok := f.(*ForwardFrame)
	return ok && fw.Kind == KindActivations && fw.DType == ActF16 &&
		slices.ContainsFunc(fw.Acts, func(v float32) bool { return v != v })
}

// frameEqual compares frames field by field, nil and empty slices alike and any
// NaN equal to any other (bit-exactness is the fuzz test's byte comparison).
func frameEqual(a, b Frame) bool {
	floatEq := func(x, y float32) bool { return x == y || (x != x && y != y) }
	switch x := a.(type) {
	case *OpenFrame:
		y, ok := b.(*OpenFrame)
		return ok && x.Session == y.Session && bytes.Equal(x.Model, y.Model) && x.Hop == y.Hop &&
			x.First == y.First && x.Last == y.Last && x.MaxLen == y.MaxLen && x.DType == y.DType &&
			x.Client == y.Client && x.Ticket == y.Ticket &&
			slices.EqualFunc(x.Tail, y.Tail, func(p, q RouteHop) bool {
				return p.Hop == q.Hop && slices.EqualFunc(p.Addrs, q.Addrs, bytes.Equal)
			})
	case *ForwardFrame:
		y, ok := b.(*ForwardFrame)
		return ok && x.Session == y.Session && x.Pos == y.Pos && x.NoResult == y.NoResult &&
			x.Kind == y.Kind && x.Width == y.Width && x.DType == y.DType && x.TopK == y.TopK &&
			slices.Equal(x.Tokens, y.Tokens) && slices.EqualFunc(x.Acts, y.Acts, floatEq)
	case *ResultFrame:
		y, ok := b.(*ResultFrame)
		return ok && x.Session == y.Session && x.Pos == y.Pos && x.Vocab == y.Vocab &&
			slices.Equal(x.IDs, y.IDs) && slices.EqualFunc(x.Logits, y.Logits, floatEq)
	case *ErrorFrame:
		y, ok := b.(*ErrorFrame)
		return ok && *x == *y
	case *ReadyFrame:
		y, ok := b.(*ReadyFrame)
		return ok && *x == *y
	case *CloseFrame:
		y, ok := b.(*CloseFrame)
		return ok && *x == *y
	case *AttachFrame:
		y, ok := b.(*AttachFrame)
		return ok && *x == *y
	}
	return false
}
