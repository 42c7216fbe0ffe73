package model

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/imece/imece/kernels"
)

// ErrFormat is wrapped by every error about a malformed model file, so callers can
// tell "this file is broken" from "this file could not be read".
var ErrFormat = errors.New("malformed model file")

const (
	ggufMagic        = 0x46554747 // "GGUF" little-endian
	defaultAlignment = 32
	maxDims          = 4        // GGML_MAX_DIMS
	maxNameLen       = 1 << 16  // tensor names and keys
	maxStringLen     = 16 << 20 // chat templates are the longest strings seen in practice
	maxArrayDepth    = 4
	// maxTensors bounds tensor and metadata counts; the largest mixture-of-experts
	// GGUF files hold a few thousand tensors.
	maxTensors = 1 << 20
	// allocHint caps the capacity preallocated from a count the file claims.
	allocHint = 1 << 12
)

// GGUF value types, as numbered by the format.
const (
	ggufUint8 uint32 = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
)

// GGUF is a parsed GGUF file: its metadata and its tensors, whose Data slices point
// into the file's bytes.
type GGUF struct {
	Version   uint32
	Meta      Metadata
	Tensors   []Tensor
	Alignment int
	// DataOffset is where the tensor data section starts in the file.
	DataOffset int64
}

// ParseGGUF decodes a GGUF v2 or v3 file held in data (typically memory-mapped).
// It checks everything a malicious or truncated file could get wrong: lengths past
// the end, absurd dimensions, unknown types, misaligned or overlapping tensor data.
// The returned tensors alias data.
func ParseGGUF(data []byte) (*GGUF, error) {
	r := &reader{buf: data}
	magic := r.u32()
	if r.err != nil || magic != ggufMagic {
		return nil, fmt.Errorf("%w: not a GGUF file (bad magic)", ErrFormat)
	}
	g := &GGUF{Version: r.u32(), Alignment: defaultAlignment}
	if r.err == nil && (g.Version < 2 || g.Version > 3) {
		return nil, fmt.Errorf("%w: GGUF version %d is not supported (want 2 or 3)", ErrFormat, g.Version)
	}
	nTensors := r.u64()
	nKV := r.u64()
	if r.err != nil {
		return nil, fmt.Errorf("%w: truncated GGUF header", ErrFormat)
	}
	// Every entry takes at least 8 bytes, so counts beyond the file size are lies;
	// checking here keeps a forged count from allocating gigabytes.
	if nKV > uint64(len(data))/8 {
		return nil, fmt.Errorf("%w: GGUF header claims %d metadata entries in a %d-byte file", ErrFormat, nKV, len(data))
	}
	if nTensors > uint64(len(data))/8 {
		return nil, fmt.Errorf("%w: GGUF header claims %d tensors in a %d-byte file", ErrFormat, nTensors, len(data))
	}
	if nTensors > maxTensors || nKV > maxTensors {
		return nil, fmt.Errorf("%w: GGUF header claims %d tensors and %d metadata entries (limit %d)", ErrFormat, nTensors, nKV, maxTensors)
	}
	// Counts are only claims until the entries are read: size allocations by what
	// has been read, not by what the header says, or a 16-byte lie in a large
	// mapped file allocates gigabytes.
	g.Meta = Metadata{index: make(map[string]int, min(nKV, allocHint))}
	for i := uint64(0); i < nKV; i++ {
		key := r.str(maxNameLen)
		typ := r.u32()
		v := r.value(typ, 0)
		if r.err != nil {
			return nil, fmt.Errorf("%w: metadata entry %d (%q): %v", ErrFormat, i, key, r.err)
		}
		if _, dup := g.Meta.index[key]; dup {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrFormat, key)
		}
		g.Meta.Set(key, v)
	}
	if a, ok := g.Meta.Get("general.alignment"); ok {
		al, ok := a.(uint32)
		if !ok || al == 0 || al&(al-1) != 0 || al > 1<<20 {
			return nil, fmt.Errorf("%w: general.alignment %v is not a power of two", ErrFormat, a)
		}
		g.Alignment = int(al)
	}

	type info struct {
		t      Tensor
		offset uint64
		size   int64
	}
	infos := make([]info, 0, min(nTensors, allocHint))
	names := make(map[string]bool, min(nTensors, allocHint))
	for i := uint64(0); i < nTensors; i++ {
		name := r.str(maxNameLen)
		nd := r.u32()
		if r.err != nil {
			return nil, fmt.Errorf("%w: tensor info %d: %v", ErrFormat, i, r.err)
		}
		// Names identify tensors in manifests and on the wire, which take UTF-8.
		if name == "" || !utf8.ValidString(name) {
			return nil, fmt.Errorf("%w: tensor %d has an empty or invalid UTF-8 name %q", ErrFormat, i, name)
		}
		if nd == 0 || nd > maxDims {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions (want 1..%d)", ErrFormat, name, nd, maxDims)
		}
		shape := make([]int64, nd)
		elems := int64(1)
		for d := range shape {
			n := r.u64()
			if r.err != nil {
				return nil, fmt.Errorf("%w: tensor info %q: %v", ErrFormat, name, r.err)
			}
			if n == 0 || n > math.MaxInt32*16 {
				return nil, fmt.Errorf("%w: tensor %q dimension %d is %d", ErrFormat, name, d, n)
			}
			if elems > math.MaxInt64/int64(n) {
				return nil, fmt.Errorf("%w: tensor %q has too many elements", ErrFormat, name)
			}
			shape[d] = int64(n)
			elems *= int64(n)
		}
		dt := kernels.DType(r.u32())
		off := r.u64()
		if r.err != nil {
			return nil, fmt.Errorf("%w: tensor info %q: %v", ErrFormat, name, r.err)
		}
		if !dt.Valid() {
			return nil, fmt.Errorf("%w: tensor %q has unsupported type %s", ErrFormat, name, dt)
		}
		if shape[0]%int64(dt.BlockSize()) != 0 {
			return nil, fmt.Errorf("%w: tensor %q: row of %d elements is not a whole number of %s blocks", ErrFormat, name, shape[0], dt)
		}
		size, err := dt.RowBytes(elems)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		if names[name] {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrFormat, name)
		}
		names[name] = true
		infos = append(infos, info{Tensor{Name: name, Shape: shape, DType: dt}, off, size})
	}
	start := align(int64(r.off), int64(g.Alignment))
	if start > int64(len(data)) {
		if len(infos) > 0 {
			return nil, fmt.Errorf("%w: file ends before its tensor data", ErrFormat)
		}
		start = int64(len(data))
	}
	g.DataOffset = start
	avail := int64(len(data)) - start
	// Tensors must lie inside the data section, aligned, and must not overlap.
	type span struct{ lo, hi int64 }
	spans := make([]span, 0, len(infos))
	for _, in := range infos {
		if in.offset%uint64(g.Alignment) != 0 {
			return nil, fmt.Errorf("%w: tensor %q offset %d is not aligned to %d", ErrFormat, in.t.Name, in.offset, g.Alignment)
		}
		if in.offset > uint64(avail) || uint64(in.size) > uint64(avail)-in.offset {
			return nil, fmt.Errorf("%w: tensor %q (%d bytes at offset %d) extends past the end of the file (%d bytes of data)",
				ErrFormat, in.t.Name, in.size, in.offset, avail)
		}
		lo := start + int64(in.offset)
		spans = append(spans, span{lo, lo + in.size})
		in.t.Data = data[lo : lo+in.size : lo+in.size]
		g.Tensors = append(g.Tensors, in.t)
	}
	if err := checkOverlap(g.Tensors, func(i int) (int64, int64) { return spans[i].lo, spans[i].hi }); err != nil {
		return nil, err
	}
	return g, nil
}

func checkOverlap(ts []Tensor, at func(int) (lo, hi int64)) error {
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { la, _ := at(a); lb, _ := at(b); return cmp.Compare(la, lb) })
	for k := 1; k < len(order); k++ {
		_, prevHi := at(order[k-1])
		lo, hi := at(order[k])
		if lo < prevHi && hi > lo {
			return fmt.Errorf("%w: tensors %q and %q overlap", ErrFormat, ts[order[k-1]].Name, ts[order[k]].Name)
		}
	}
	return nil
}

func align(x, a int64) int64 { return (x + a - 1) / a * a }

// reader decodes little-endian GGUF primitives, remembering the first error so the
// parsing code reads straight through and checks once.
type reader struct {
	buf []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.err = errors.New("unexpected end of file")
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) str(limit int) string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) {
		r.err = fmt.Errorf("string of %d bytes exceeds the limit of %d", n, limit)
		return ""
	}
	return string(r.take(int(n)))
}

// value decodes one metadata value of type typ.
func (r *reader) value(typ uint32, depth int) any {
	switch typ {
	case ggufUint8:
		return r.u8()
	case ggufInt8:
		return int8(r.u8())
	case ggufUint16:
		return r.u16()
	case ggufInt16:
		return int16(r.u16())
	case ggufUint32:
		return r.u32()
	case ggufInt32:
		return int32(r.u32())
	case ggufFloat32:
		return math.Float32frombits(r.u32())
	case ggufBool:
		b := r.u8()
		if r.err == nil && b > 1 {
			r.err = fmt.Errorf("bool value %d", b)
		}
		return b == 1
	case ggufString:
		return r.str(maxStringLen)
	case ggufUint64:
		return r.u64()
	case ggufInt64:
		return int64(r.u64())
	case ggufFloat64:
		return math.Float64frombits(r.u64())
	case ggufArray:
		return r.array(depth)
	}
	if r.err == nil {
		r.err = fmt.Errorf("unknown value type %d", typ)
	}
	return nil
}

func (r *reader) array(depth int) any {
	et := r.u32()
	n := r.u64()
	if r.err != nil {
		return nil
	}
	if depth >= maxArrayDepth {
		r.err = errors.New("arrays nested too deeply")
		return nil
	}
	// Each element takes at least one byte (strings eight), which bounds n by what
	// is left of the file before anything is allocated.
	if n > uint64(len(r.buf)-r.off) {
		r.err = fmt.Errorf("array of %d elements exceeds the file", n)
		return nil
	}
	fixed := func(size int) []byte {
		if n > uint64(len(r.buf)-r.off)/uint64(size) {
			r.err = fmt.Errorf("array of %d elements exceeds the file", n)
			return nil
		}
		return r.take(int(n) * size)
	}
	le := binary.LittleEndian
	switch et {
	case ggufUint8, ggufInt8, ggufBool:
		b := fixed(1)
		if b == nil {
			return nil
		}
		switch et {
		case ggufUint8:
			return append([]uint8(nil), b...)
		case ggufInt8:
			out := make([]int8, n)
			for i := range out {
				out[i] = int8(b[i])
			}
			return out
		default:
			out := make([]bool, n)
			for i := range out {
				if b[i] > 1 {
					r.err = fmt.Errorf("bool value %d", b[i])
					return nil
				}
				out[i] = b[i] == 1
			}
			return out
		}
	case ggufUint16, ggufInt16:
		b := fixed(2)
		if b == nil {
			return nil
		}
		if et == ggufUint16 {
			out := make([]uint16, n)
			for i := range out {
				out[i] = le.Uint16(b[2*i:])
			}
			return out
		}
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out
	case ggufUint32, ggufInt32, ggufFloat32:
		b := fixed(4)
		if b == nil {
			return nil
		}
		switch et {
		case ggufUint32:
			out := make([]uint32, n)
			for i := range out {
				out[i] = le.Uint32(b[4*i:])
			}
			return out
		case ggufInt32:
			out := make([]int32, n)
			for i := range out {
				out[i] = int32(le.Uint32(b[4*i:]))
			}
			return out
		default:
			out := make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
			}
			return out
		}
	case ggufUint64, ggufInt64, ggufFloat64:
		b := fixed(8)
		if b == nil {
			return nil
		}
		switch et {
		case ggufUint64:
			out := make([]uint64, n)
			for i := range out {
				out[i] = le.Uint64(b[8*i:])
			}
			return out
		case ggufInt64:
			out := make([]int64, n)
			for i := range out {
				out[i] = int64(le.Uint64(b[8*i:]))
			}
			return out
		default:
			out := make([]float64, n)
			for i := range out {
				out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
			}
			return out
		}
	case ggufString:
		if n > uint64(len(r.buf)-r.off)/8 {
			r.err = fmt.Errorf("array of %d strings exceeds the file", n)
			return nil
		}
		out := make([]string, 0, min(n, allocHint))
		for range n {
			out = append(out, r.str(maxStringLen))
			if r.err != nil {
				return nil
			}
		}
		return out
	case ggufArray:
		out := make([]any, 0, min(n, allocHint))
		for range n {
			out = append(out, r.array(depth+1))
			if r.err != nil {
				return nil
			}
		}
		return out
	}
	r.err = fmt.Errorf("unknown array element type %d", et)
	return nil
}
