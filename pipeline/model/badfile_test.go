package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

// ggufBuilder writes GGUF files field by field, so tests can say exactly which field
// is wrong.
type ggufBuilder struct{ bytes.Buffer }

func (b *ggufBuilder) u8(v uint8) *ggufBuilder { b.WriteByte(v); return b }
func (b *ggufBuilder) u32(v uint32) *ggufBuilder {
	b.Write(binary.LittleEndian.AppendUint32(nil, v))
	return b
}
func (b *ggufBuilder) u64(v uint64) *ggufBuilder {
	b.Write(binary.LittleEndian.AppendUint64(nil, v))
	return b
}
func (b *ggufBuilder) str(s string) *ggufBuilder { b.u64(uint64(len(s))); b.WriteString(s); return b }

// header starts a v3 file with the given counts.
func header(tensors, kvs uint64) *ggufBuilder {
	b := &ggufBuilder{}
	return b.u32(ggufMagic).u32(3).u64(tensors).u64(kvs)
}

// tensorInfo appends one tensor descriptor.
func (b *ggufBuilder) tensorInfo(name string, dt kernels.DType, off uint64, shape ...uint64) *ggufBuilder {
	b.str(name).u32(uint32(len(shape)))
	for _, d := range shape {
		b.u64(d)
	}
	return b.u32(uint32(dt)).u64(off)
}

// data pads to the 32-byte alignment and appends n bytes of tensor data.
func (b *ggufBuilder) data(n int) *ggufBuilder {
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, n))
	return b
}

func TestParseGGUFBadFiles(t *testing.T) {
	kv := func(key string, typ uint32) *ggufBuilder { return header(0, 1).str(key).u32(typ) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a GGUF file (bad magic)"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), "bad magic"},
		{"version 1", (&ggufBuilder{}).u32(ggufMagic).u32(1).u64(0).u64(0).Bytes(), "GGUF version 1 is not supported"},
		{"version 4", (&ggufBuilder{}).u32(ggufMagic).u32(4).u64(0).u64(0).Bytes(), "GGUF version 4 is not supported"},
		{"truncated header", (&ggufBuilder{}).u32(ggufMagic).u32(3).u64(0).Bytes(), "truncated GGUF header"},
		{"huge kv count", header(0, 1<<60).Bytes(), "claims 1152921504606846976 metadata entries"},
		{"huge tensor count", header(1<<40, 0).Bytes(), "claims 1099511627776 tensors"},
		{"too many entries", append(header(0, 1<<21).Bytes(), make([]byte, 1<<24)...), "GGUF header claims 0 tensors and 2097152 metadata entries (limit 1048576)"},
		{"huge key", header(0, 1).u64(1 << 40).Bytes(), "string of 1099511627776 bytes exceeds the limit"},
		{"key past end", header(0, 1).u64(100).Bytes(), "unexpected end of file"},
		{"unknown value type", kv("k", 13).u32(0).Bytes(), `metadata entry 0 ("k"): unknown value type 13`},
		{"huge string", kv("k", ggufString).u64(math.MaxUint64).Bytes(), "exceeds the limit"},
		{"string past end", kv("k", ggufString).u64(100).str("abc").Bytes(), "unexpected end of file"},
		{"bool 2", kv("k", ggufBool).u8(2).Bytes(), "bool value 2"},
		{"truncated u64", kv("k", ggufUint64).u32(1).Bytes(), "unexpected end of file"},
		{"huge array", kv("k", ggufArray).u32(ggufUint32).u64(1 << 62).Bytes(), "array of 4611686018427387904 elements exceeds the file"},
		{"array past end", kv("k", ggufArray).u32(ggufUint64).u64(3).u64(1).Bytes(), "exceeds the file"},
		{"huge string array", kv("k", ggufArray).u32(ggufString).u64(4).u64(0).Bytes(), "array of 4 strings exceeds the file"},
		{"unknown element type", kv("k", ggufArray).u32(42).u64(0).Bytes(), "unknown array element type 42"},
		{"too deep", kv("k", ggufArray).u32(ggufArray).u64(1).u32(ggufArray).u64(1).u32(ggufArray).u64(1).u32(ggufArray).u64(1).u32(ggufArray).u64(0).Bytes(), "nested too deeply"},
		{"duplicate key", header(0, 2).str("k").u32(ggufUint8).u8(1).str("k").u32(ggufUint8).u8(2).Bytes(), `duplicate metadata key "k"`},
		{"alignment not power of two", kv("general.alignment", ggufUint32).u32(48).Bytes(), "general.alignment 48 is not a power of two"},
		{"alignment wrong type", kv("general.alignment", ggufUint64).u64(32).Bytes(), "general.alignment 32 is not a power of two"},
		{"empty name", header(1, 0).tensorInfo("", kernels.F32, 0, 1).data(4).Bytes(), `tensor 0 has an empty or invalid UTF-8 name ""`},
		{"invalid name", header(1, 0).tensorInfo("a\xffb", kernels.F32, 0, 1).data(4).Bytes(), `tensor 0 has an empty or invalid UTF-8 name "a\xffb"`},
		{"zero dims", header(1, 0).tensorInfo("w", kernels.F32, 0).data(4).Bytes(), `tensor "w" has 0 dimensions`},
		{"five dims", header(1, 0).tensorInfo("w", kernels.F32, 0, 1, 1, 1, 1, 1).data(4).Bytes(), `tensor "w" has 5 dimensions`},
		{"zero dim", header(1, 0).tensorInfo("w", kernels.F32, 0, 4, 0).data(4).Bytes(), `tensor "w" dimension 1 is 0`},
		{"absurd dim", header(1, 0).tensorInfo("w", kernels.F32, 0, 1<<40).data(4).Bytes(), `tensor "w" dimension 0 is 1099511627776`},
		{"element overflow", header(1, 0).tensorInfo("w", kernels.F32, 0, 1<<34, 1<<34, 1<<34).data(4).Bytes(), `tensor "w" has too many elements`},
		{"byte overflow", header(1, 0).tensorInfo("w", kernels.F32, 0, 1<<34, 1<<28).data(4).Bytes(), `tensor "w": 4611686018427387904 elements of f32 overflow`},
		{"unknown type", header(1, 0).tensorInfo("w", 99, 0, 4).data(4).Bytes(), `tensor "w" has unsupported type type(99)`},
		{"partial block", header(1, 0).tensorInfo("w", kernels.Q8_0, 0, 16).data(34).Bytes(), `tensor "w": row of 16 elements is not a whole number of q8_0 blocks`},
		{"duplicate tensor", header(2, 0).tensorInfo("w", kernels.F32, 0, 1).tensorInfo("w", kernels.F32, 32, 1).data(64).Bytes(), `duplicate tensor "w"`},
		{"misaligned", header(1, 0).tensorInfo("w", kernels.F32, 4, 1).data(64).Bytes(), `tensor "w" offset 4 is not aligned to 32`},
		{"past the end", header(1, 0).tensorInfo("w", kernels.F32, 0, 16).data(32).Bytes(), `tensor "w" (64 bytes at offset 0) extends past the end of the file (32 bytes of data)`},
		{"offset past the end", header(1, 0).tensorInfo("w", kernels.F32, 1<<62, 1).data(32).Bytes(), `tensor "w" (4 bytes at offset 4611686018427387904) extends past the end`},
		{"no data section", header(1, 0).tensorInfo("w", kernels.F32, 0, 1).Bytes(), "file ends before its tensor data"},
		{"overlap", header(2, 0).tensorInfo("a", kernels.F32, 0, 16).tensorInfo("b", kernels.F32, 32, 16).data(96).Bytes(), `tensors "a" and "b" overlap`},
		{"truncated tensor info", header(1, 0).str("w").u32(2).u64(4).Bytes(), "tensor info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGGUF(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}

// TestFromGGUFBadModels takes a valid model apart: files that parse as GGUF but
// are not a model the engine can run.
func TestFromGGUFBadModels(t *testing.T) {
	g, err := ParseGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	without := func(key string) Metadata {
		var kvs []KV
		for _, kv := range g.Meta.All() {
			if kv.Key != key {
				kvs = append(kvs, kv)
			}
		}
		return NewMetadata(kvs...)
	}
	with := func(key string, v any) Metadata {
		md := NewMetadata(g.Meta.All()...)
		md.Set(key, v)
		return md
	}
	tensors := func(edit func([]Tensor) []Tensor) []Tensor {
		return edit(append([]Tensor(nil), g.Tensors...))
	}
	reshaped := func(name string, shape ...int64) []Tensor {
		return tensors(func(ts []Tensor) []Tensor {
			for i := range ts {
				if ts[i].Name == name {
					ts[i].Shape = shape
				}
			}
			return ts
		})
	}
	tests := []struct {
		name    string
		md      Metadata
		tensors []Tensor
		want    string
	}{
		{"no architecture", without("general.architecture"), nil, "general.architecture is missing"},
		{"other architecture", with("general.architecture", "gpt2"), nil, `architecture "gpt2" is not supported`},
		{"no block count", without("llama.block_count"), nil, "metadata [llama.block_count] missing"},
		{"negative heads", with("llama.attention.head_count", int32(-4)), nil, "metadata [llama.attention.head_count] missing"},
		{"zero heads", with("llama.attention.head_count", uint32(0)), nil, "head count is 0"},
		{"heads", with("llama.attention.head_count_kv", uint32(3)), nil, "KV head count 3 does not divide head count 4"},
		{"huge layers", with("llama.block_count", uint32(1<<20)), nil, "block count 1048576 out of range"},
		{"bad eps", with("llama.attention.layer_norm_rms_epsilon", float32(math.NaN())), nil, "norm epsilon NaN out of range"},
		{"bad rope base", with("llama.rope.freq_base", float32(math.Inf(1))), nil, "rope base +Inf out of range"},
		{"rope dim", with("llama.rope.dimension_count", uint32(18)), nil, "rope dimension 18 out of range"},
		{"missing tensor", g.Meta, tensors(func(ts []Tensor) []Tensor {
			return append(ts[:10:10], ts[11:]...)
		}), "tensor blk.0.ffn_up.weight is missing"},
		{"wrong shape", g.Meta, reshaped("blk.2.attn_k.weight", 64, 16), "tensor blk.2.attn_k.weight has shape [64 16], want [64 32]"},
		{"wrong rank", g.Meta, reshaped("output_norm.weight", 32, 2), "tensor output_norm.weight has shape [32 2], want [64]"},
		{"no embedding", g.Meta, tensors(func(ts []Tensor) []Tensor { return ts[1:] }), "token_embd.weight is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := tt.tensors
			if ts == nil {
				ts = g.Tensors
			}
			srcs := make([]TensorSource, len(ts))
			for i, x := range ts {
				srcs[i] = SourceOf(x)
				// A reshaped tensor keeps its element count only by accident.
				if size, err := srcs[i].Size(); err == nil && size != int64(len(x.Data)) {
					srcs[i].WriteData = func(w io.Writer) error { _, err := w.Write(make([]byte, size)); return err }
				}
			}
			var buf bytes.Buffer
			if err := WriteGGUF(&buf, tt.md, srcs...); err != nil {
				t.Fatal(err)
			}
			_, err := FromGGUF(buf.Bytes())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}

// stBuilder writes a safetensors file with a literal JSON header.
func stFile(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestParseSafetensorsBadFiles(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "safetensors file of 0 bytes has no header length"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "safetensors header of 1099511627776 bytes exceeds the limit of 104857600"},
		{"header past end", binary.LittleEndian.AppendUint64(nil, 100), "header of 100 bytes extends past the end of the 8-byte file"},
		{"not an object", stFile(`[1]`, 0), "does not start with '{'"},
		{"empty header", stFile(``, 0), "does not start with '{'"},
		{"bad UTF-8", stFile("{\"\xff\":1}", 0), "not valid UTF-8"},
		{"bad JSON", stFile(`{"a":`, 0), "safetensors header"},
		{"trailing garbage", stFile(`{}x`, 0), "1 bytes of trailing data"},
		{"duplicate", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `duplicate entry "a"`},
		{"metadata not strings", stFile(`{"__metadata__":{"a":1}}`, 0), "__metadata__ is not an object of strings"},
		{"entry not an object", stFile(`{"a":3}`, 0), `tensor "a"`},
		{"unsupported dtype", stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, 8), `tensor "a": dtype "I64" is not supported`},
		{"no dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "a": no dtype`},
		{"no shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), `tensor "a": shape or data_offsets missing`},
		{"negative dim", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), `tensor "a": shape [-1] is not a list of non-negative integers`},
		{"fractional dim", stFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), "not a list of non-negative integers"},
		{"huge shape list", stFile(`{"a":{"dtype":"F32","shape":[`+strings.Repeat("1,", 1000)+`1],"data_offsets":[0,4]}}`, 4), "shape or data_offsets too long"},
		{"five dims", stFile(`{"a":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}}`, 4), `tensor "a": 5 dimensions`},
		{"zero dim", stFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, 0), `tensor "a": shape [0] has an empty dimension`},
		{"element overflow", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "has too many elements"},
		{"byte overflow", stFile(`{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}`, 4), "overflow"},
		{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 8), `tensor "a": data_offsets [0,4,8] is not a pair`},
		{"reversed", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, 4), "data_offsets [4, 0] are reversed"},
		{"past the end", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), `tensor "a": data_offsets [0, 8] extend past the end of the 4-byte data section`},
		{"huge offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551611,18446744073709551615]}}`, 4), "extend past the end"},
		{"size mismatch", stFile(`{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}`, 8), `tensor "a": data_offsets [0, 8] hold 8 bytes, but BF16 [3] needs 6`},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}`, 8), `tensors "a" and "b" overlap`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSafetensors(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}

func TestParseSafetensors(t *testing.T) {
	data := stFile(`{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[16,28]},`+
		`"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"c":{"dtype":"BF16","shape":[1,1,2],"data_offsets":[28,32]}}   `, 32)
	st, err := ParseSafetensors(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.Meta["format"] != "pt" {
		t.Errorf("metadata %v", st.Meta)
	}
	type row struct {
		name  string
		shape []int64
		dt    kernels.DType
		size  int
	}
	var got []row
	for _, x := range st.Tensors {
		got = append(got, row{x.Name, x.Shape, x.DType, len(x.Data)})
	}
	want := []row{{"a", []int64{1}, kernels.F32, 4}, {"b", []int64{3, 2}, kernels.F16, 12}, {"c", []int64{2, 1, 1}, kernels.BF16, 4}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tensors %v, want %v (file order, shapes innermost first)", got, want)
	}
}
