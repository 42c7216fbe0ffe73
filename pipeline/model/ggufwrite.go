package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/imece/imece/kernels"
)

// TensorSource is a tensor to be written to a model file: its descriptor, and a
// function that produces its bytes when the writer reaches it. Writing through a
// function rather than a byte slice is what lets a gigabyte model be synthesised or
// converted one tensor at a time, holding at most one tensor (or one chunk of one) in
// memory.
type TensorSource struct {
	Name string
	// Shape is in GGML order, innermost dimension first, as in Tensor.
	Shape []int64
	DType kernels.DType
	// WriteData writes the tensor's bytes to w: exactly Size() of them, or the writer
	// fails. It is called once, in file order.
	WriteData func(w io.Writer) error
}

// Size is the number of bytes the tensor's data occupies.
func (s TensorSource) Size() (int64, error) {
	if len(s.Shape) == 0 || len(s.Shape) > maxDims {
		return 0, fmt.Errorf("tensor %q has %d dimensions (want 1..%d)", s.Name, len(s.Shape), maxDims)
	}
	n := int64(1)
	for _, d := range s.Shape {
		if d <= 0 || n > math.MaxInt64/d {
			return 0, fmt.Errorf("tensor %q has shape %v", s.Name, s.Shape)
		}
		n *= d
	}
	if s.Shape[0]%int64(max(s.DType.BlockSize(), 1)) != 0 {
		return 0, fmt.Errorf("tensor %q: row of %d elements is not a whole number of %s blocks", s.Name, s.Shape[0], s.DType)
	}
	size, err := s.DType.RowBytes(n)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", s.Name, err)
	}
	return size, nil
}

// SourceOf makes a TensorSource of a tensor whose bytes are already at hand, such
// as one of a loaded model: re-writing a model is WriteGGUF(w, m.Meta, sources...).
func SourceOf(t Tensor) TensorSource {
	return TensorSource{
		Name: t.Name, Shape: t.Shape, DType: t.DType,
		WriteData: func(w io.Writer) error { _, err := w.Write(t.Data); return err },
	}
}

// WriteGGUF writes a GGUF v3 file that llama.cpp reads: the metadata in md (every
// GGUF value type, arrays of strings and arrays of arrays included), then the tensor
// descriptors, then each tensor's data aligned to general.alignment (32 unless md
// says otherwise), produced by its WriteData in turn. Only the header is built in
// memory.
//
// Values must have the Go types ParseGGUF returns (see KV); a plain int is refused
// rather than guessed at, so that writing what was parsed reproduces it exactly.
func WriteGGUF(w io.Writer, md Metadata, tensors ...TensorSource) error {
	plan, err := planGGUF(md, tensors)
	if err != nil {
		return err
	}
	cw := &countingWriter{w: w}
	if _, err := cw.Write(plan.header); err != nil {
		return fmt.Errorf("write GGUF header: %w", err)
	}
	var zeros [256]byte // alignment padding; alignments above 256 loop
	pad := func(to int64) error {
		for cw.n < to {
			if _, err := cw.Write(zeros[:min(int64(len(zeros)), to-cw.n)]); err != nil {
				return err
			}
		}
		return nil
	}
	for i, t := range tensors {
		if err := pad(plan.dataStart + plan.offsets[i]); err != nil {
			return fmt.Errorf("write GGUF padding: %w", err)
		}
		start := cw.n
		if t.WriteData == nil {
			return fmt.Errorf("write tensor %q: no data", t.Name)
		}
		// The limit turns a producer that writes too much into an error here
		// instead of a corrupt file that fails to load much later.
		lw := &limitedWriter{w: cw, left: plan.sizes[i]}
		if err := t.WriteData(lw); err != nil {
			return fmt.Errorf("write tensor %q: %w", t.Name, err)
		}
		if got := cw.n - start; got != plan.sizes[i] {
			return fmt.Errorf("write tensor %q: wrote %d bytes, want %d", t.Name, got, plan.sizes[i])
		}
	}
	if err := pad(plan.total); err != nil {
		return fmt.Errorf("write GGUF padding: %w", err)
	}
	return nil
}

// GGUFSize is the number of bytes WriteGGUF will write, for progress reporting and
// preallocation.
func GGUFSize(md Metadata, tensors ...TensorSource) (int64, error) {
	plan, err := planGGUF(md, tensors)
	if err != nil {
		return 0, err
	}
	return plan.total, nil
}

// ggufPlan is the layout of a file before any tensor data is produced.
type ggufPlan struct {
	header    []byte
	dataStart int64
	offsets   []int64 // relative to dataStart
	sizes     []int64
	total     int64
}

func planGGUF(md Metadata, tensors []TensorSource) (*ggufPlan, error) {
	alignment := int64(defaultAlignment)
	if v, ok := md.Get("general.alignment"); ok {
		a, ok := v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, fmt.Errorf("write GGUF: general.alignment %v (%T) is not a uint32 power of two", v, v)
		}
		alignment = int64(a)
	}
	var e ggufEncoder
	e.u32(ggufMagic)
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(md.Len()))
	for _, kv := range md.All() {
		if err := e.kv(kv); err != nil {
			return nil, fmt.Errorf("write GGUF: %w", err)
		}
	}
	p := &ggufPlan{offsets: make([]int64, len(tensors)), sizes: make([]int64, len(tensors))}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for i, t := range tensors {
		if len(t.Name) > maxNameLen {
			return nil, fmt.Errorf("write GGUF: tensor name of %d bytes is too long", len(t.Name))
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("write GGUF: duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Valid() {
			return nil, fmt.Errorf("write GGUF: tensor %q has unsupported type %s", t.Name, t.DType)
		}
		size, err := t.Size()
		if err != nil {
			return nil, fmt.Errorf("write GGUF: %w", err)
		}
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(uint64(d))
		}
		e.u32(uint32(t.DType))
		e.u64(uint64(off))
		p.offsets[i], p.sizes[i] = off, size
		off = align(off+size, alignment)
	}
	p.header = e.buf.Bytes()
	p.dataStart = align(int64(len(p.header)), alignment)
	p.total = p.dataStart + off
	return p, nil
}

// ggufEncoder appends little-endian GGUF primitives to a buffer (appending into its
// spare capacity, so a vocabulary of a hundred thousand scores costs no allocations).
type ggufEncoder struct{ buf bytes.Buffer }

func (e *ggufEncoder) u8(v uint8) { e.buf.WriteByte(v) }
func (e *ggufEncoder) u16(v uint16) {
	e.buf.Write(binary.LittleEndian.AppendUint16(e.buf.AvailableBuffer(), v))
}
func (e *ggufEncoder) u32(v uint32) {
	e.buf.Write(binary.LittleEndian.AppendUint32(e.buf.AvailableBuffer(), v))
}
func (e *ggufEncoder) u64(v uint64) {
	e.buf.Write(binary.LittleEndian.AppendUint64(e.buf.AvailableBuffer(), v))
}
func (e *ggufEncoder) str(s string) { e.u64(uint64(len(s))); e.buf.WriteString(s) }

func (e *ggufEncoder) kv(kv KV) error {
	if len(kv.Key) > maxNameLen {
		return fmt.Errorf("metadata key of %d bytes is too long", len(kv.Key))
	}
	typ, err := ggufType(kv.Value, 0)
	if err != nil {
		return fmt.Errorf("metadata %q: %w", kv.Key, err)
	}
	e.str(kv.Key)
	e.u32(typ)
	e.value(kv.Value)
	return nil
}

// ggufType returns the GGUF type of a Go value, checking that the value (and every
// element of an array) can be written and read back within the decoder's limits.
func ggufType(v any, depth int) (uint32, error) {
	switch x := v.(type) {
	case uint8:
		return ggufUint8, nil
	case int8:
		return ggufInt8, nil
	case uint16:
		return ggufUint16, nil
	case int16:
		return ggufInt16, nil
	case uint32:
		return ggufUint32, nil
	case int32:
		return ggufInt32, nil
	case float32:
		return ggufFloat32, nil
	case bool:
		return ggufBool, nil
	case uint64:
		return ggufUint64, nil
	case int64:
		return ggufInt64, nil
	case float64:
		return ggufFloat64, nil
	case string:
		if len(x) > maxStringLen {
			return 0, fmt.Errorf("string of %d bytes exceeds the limit of %d", len(x), maxStringLen)
		}
		return ggufString, nil
	case []string:
		for _, s := range x {
			if len(s) > maxStringLen {
				return 0, fmt.Errorf("string of %d bytes exceeds the limit of %d", len(s), maxStringLen)
			}
		}
		return ggufArray, nil
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool,
		[]uint64, []int64, []float64:
		return ggufArray, nil
	case []any:
		if depth+1 >= maxArrayDepth {
			return 0, errors.New("arrays nested too deeply")
		}
		for _, el := range x {
			t, err := ggufType(el, depth+1)
			if err != nil {
				return 0, err
			}
			if t != ggufArray {
				return 0, fmt.Errorf("array of arrays holds a %T", el)
			}
		}
		return ggufArray, nil
	}
	return 0, fmt.Errorf("value of type %T has no GGUF type", v)
}

// value encodes a value ggufType accepted, without its type tag.
func (e *ggufEncoder) value(v any) {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	default:
		e.array(v)
	}
}

func (e *ggufEncoder) array(v any) {
	switch x := v.(type) {
	case []uint8:
		putArray(e, ggufUint8, x, e.u8)
	case []int8:
		putArray(e, ggufInt8, x, func(y int8) { e.u8(uint8(y)) })
	case []uint16:
		putArray(e, ggufUint16, x, e.u16)
	case []int16:
		putArray(e, ggufInt16, x, func(y int16) { e.u16(uint16(y)) })
	case []uint32:
		putArray(e, ggufUint32, x, e.u32)
	case []int32:
		putArray(e, ggufInt32, x, func(y int32) { e.u32(uint32(y)) })
	case []float32:
		putArray(e, ggufFloat32, x, func(y float32) { e.u32(math.Float32bits(y)) })
	case []bool:
		putArray(e, ggufBool, x, func(y bool) { e.value(y) })
	case []string:
		putArray(e, ggufString, x, e.str)
	case []uint64:
		putArray(e, ggufUint64, x, e.u64)
	case []int64:
		putArray(e, ggufInt64, x, func(y int64) { e.u64(uint64(y)) })
	case []float64:
		putArray(e, ggufFloat64, x, func(y float64) { e.u64(math.Float64bits(y)) })
	case []any:
		putArray(e, ggufArray, x, e.array)
	}
}

// putArray encodes an array: element type, count, elements.
func putArray[T any](e *ggufEncoder, elem uint32, xs []T, put func(T)) {
	e.u32(elem)
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		put(x)
	}
}

// countingWriter counts the bytes written through it, reporting the running total
// to report when set.
type countingWriter struct {
	w      io.Writer
	n      int64
	report func(n int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.report != nil {
		c.report(c.n)
	}
	return n, err
}

// limitedWriter refuses to write more than left bytes.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("tensor data overruns its size by %d bytes", int64(len(p))-l.left)
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}
