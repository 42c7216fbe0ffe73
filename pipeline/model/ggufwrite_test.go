package model

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

// allTypesMeta holds one value of every GGUF type, and arrays of each.
func allTypesMeta() Metadata {
	return NewMetadata(
		KV{"general.architecture", "llama"},
		KV{"t.u8", uint8(200)},
		KV{"t.i8", int8(-100)},
		KV{"t.u16", uint16(60000)},
		KV{"t.i16", int16(-30000)},
		KV{"t.u32", uint32(4000000000)},
		KV{"t.i32", int32(-2000000000)},
		KV{"t.f32", float32(3.25)},
		KV{"t.bool", true},
		KV{"t.str", "héllo"},
		KV{"t.u64", uint64(1) << 63},
		KV{"t.i64", int64(-1) << 62},
		KV{"t.f64", math.Pi},
		KV{"a.u8", []uint8{1, 2, 3}},
		KV{"a.i8", []int8{-1, 2}},
		KV{"a.u16", []uint16{1, 65535}},
		KV{"a.i16", []int16{-1, 2}},
		KV{"a.u32", []uint32{7}},
		KV{"a.i32", []int32{-7, 8}},
		KV{"a.f32", []float32{0.5, -1}},
		KV{"a.bool", []bool{true, false, true}},
		KV{"a.str", []string{"a", "", "ccc"}},
		KV{"a.u64", []uint64{1 << 40}},
		KV{"a.i64", []int64{-1 << 40}},
		KV{"a.f64", []float64{1e300}},
		KV{"a.empty", []string{}},
		KV{"a.nested", []any{[]int32{1, 2}, []string{"x"}, []any{[]uint8{9}}}},
	)
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		putF32(b[4*i:], x)
	}
	return b
}

func TestWriteGGUFRoundTrip(t *testing.T) {
	md := allTypesMeta()
	q8 := make([]byte, 2*34) // two Q8_0 blocks
	for i := range q8 {
		q8[i] = byte(i)
	}
	tensors := []Tensor{
		{Name: "a", Shape: []int64{3}, DType: kernels.F32, Data: f32Bytes(1, 2, 3)},
		{Name: "b", Shape: []int64{32, 2}, DType: kernels.Q8_0, Data: q8},
		{Name: "c", Shape: []int64{1, 1, 1, 2}, DType: kernels.F16, Data: []byte{1, 2, 3, 4}},
	}
	var srcs []TensorSource
	for _, t := range tensors {
		srcs = append(srcs, SourceOf(t))
	}
	var buf bytes.Buffer
	if err := WriteGGUF(&buf, md, srcs...); err != nil {
		t.Fatal(err)
	}
	size, err := GGUFSize(md, srcs...)
	if err != nil || size != int64(buf.Len()) {
		t.Fatalf("GGUFSize = %d, %v; wrote %d", size, err, buf.Len())
	}
	g, err := ParseGGUF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 3 || g.DataOffset%32 != 0 {
		t.Errorf("version %d, data offset %d", g.Version, g.DataOffset)
	}
	if !reflect.DeepEqual(g.Meta.All(), md.All()) {
		t.Errorf("metadata differs:\n got %#v\nwant %#v", g.Meta.All(), md.All())
	}
	if len(g.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(g.Tensors), len(tensors))
	}
	for i, want := range tensors {
		got := g.Tensors[i]
		if got.Name != want.Name || !reflect.DeepEqual(got.Shape, want.Shape) || got.DType != want.DType || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %d: got %s %v %s %x, want %s %v %s %x", i, got.Name, got.Shape, got.DType, got.Data, want.Name, want.Shape, want.DType, want.Data)
		}
	}
	// Writing what was parsed reproduces the file byte for byte.
	var again bytes.Buffer
	if err := WriteGGUF(&again, g.Meta, sourcesOf(g.Tensors)...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("re-writing the parsed file changed its bytes")
	}
}

func sourcesOf(ts []Tensor) []TensorSource {
	out := make([]TensorSource, len(ts))
	for i, t := range ts {
		out[i] = SourceOf(t)
	}
	return out
}

func TestWriteGGUFAlignment(t *testing.T) {
	md := NewMetadata(KV{"general.alignment", uint32(64)})
	var buf bytes.Buffer
	err := WriteGGUF(&buf, md,
		SourceOf(Tensor{Name: "x", Shape: []int64{3}, DType: kernels.F32, Data: f32Bytes(1, 2, 3)}),
		SourceOf(Tensor{Name: "y", Shape: []int64{1}, DType: kernels.F32, Data: f32Bytes(4)}))
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGGUF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if g.Alignment != 64 || g.DataOffset%64 != 0 || buf.Len()%64 != 0 {
		t.Errorf("alignment %d, data offset %d, size %d", g.Alignment, g.DataOffset, buf.Len())
	}
	if off := int64(cap(g.Tensors[0].Data)); off != 12 {
		t.Errorf("cap %d", off)
	}
}

func TestWriteGGUFErrors(t *testing.T) {
	good := Tensor{Name: "x", Shape: []int64{2}, DType: kernels.F32, Data: f32Bytes(1, 2)}
	tests := []struct {
		name    string
		md      Metadata
		tensors []TensorSource
		want    string
	}{
		{"plain int", NewMetadata(KV{"k", 3}), nil, `metadata "k": value of type int has no GGUF type`},
		{"nil value", NewMetadata(KV{"k", nil}), nil, `value of type <nil>`},
		{"bad alignment", NewMetadata(KV{"general.alignment", uint32(3)}), nil, "general.alignment 3"},
		{"mixed nested", NewMetadata(KV{"k", []any{"x"}}), nil, "array of arrays holds a string"},
		{"too deep", NewMetadata(KV{"k", []any{[]any{[]any{[]any{[]int32{}}}}}}), nil, "nested too deeply"},
		{"duplicate tensor", Metadata{}, []TensorSource{SourceOf(good), SourceOf(good)}, `duplicate tensor "x"`},
		{"no dims", Metadata{}, []TensorSource{{Name: "x", DType: kernels.F32}}, `tensor "x" has 0 dimensions`},
		{"zero dim", Metadata{}, []TensorSource{{Name: "x", Shape: []int64{0}, DType: kernels.F32}}, `tensor "x" has shape [0]`},
		{"partial block", Metadata{}, []TensorSource{{Name: "x", Shape: []int64{31}, DType: kernels.Q8_0}}, "not a whole number of q8_0 blocks"},
		{"bad type", Metadata{}, []TensorSource{{Name: "x", Shape: []int64{1}, DType: 99}}, "unsupported type"},
		{"short data", Metadata{}, []TensorSource{SourceOf(Tensor{Name: "x", Shape: []int64{3}, DType: kernels.F32, Data: f32Bytes(1, 2)})}, `tensor "x": wrote 8 bytes, want 12`},
		{"long data", Metadata{}, []TensorSource{SourceOf(Tensor{Name: "x", Shape: []int64{1}, DType: kernels.F32, Data: f32Bytes(1, 2)})}, "overruns its size by 4 bytes"},
		{"producer error", Metadata{}, []TensorSource{{Name: "x", Shape: []int64{1}, DType: kernels.F32,
			WriteData: func(io.Writer) error { return errors.New("boom") }}}, `write tensor "x": boom`},
		{"no producer", Metadata{}, []TensorSource{{Name: "x", Shape: []int64{1}, DType: kernels.F32}}, `tensor "x": no data`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteGGUF(io.Discard, tt.md, tt.tensors...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestRewriteStories260K re-writes the real reference model: the tensors and
// metadata must survive unchanged, and the file must come out byte for byte the
// same, since llama.cpp's writer lays files out exactly as ours does.
func TestRewriteStories260K(t *testing.T) {
	orig := stories260K(t)
	m, err := FromGGUF(orig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteGGUF(f, m.Meta, sourcesOf(m.Tensors)...); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := OpenGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if !reflect.DeepEqual(m2.Meta.All(), m.Meta.All()) {
		t.Error("metadata changed")
	}
	if m2.Config != m.Config {
		t.Errorf("config %+v, want %+v", m2.Config, m.Config)
	}
	if len(m2.Tensors) != len(m.Tensors) {
		t.Fatalf("%d tensors, want %d", len(m2.Tensors), len(m.Tensors))
	}
	for i := range m.Tensors {
		a, b := m.Tensors[i], m2.Tensors[i]
		if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("tensor %s changed", a.Name)
		}
	}
	copied, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, orig) {
		t.Errorf("re-written file differs from the original (%d vs %d bytes)", len(copied), len(orig))
	}
}
