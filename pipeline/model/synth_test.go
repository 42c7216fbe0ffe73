package model

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

// tinyOptions is the shape most tests synthesise: small, but with grouped-query
// attention and rows that are whole quantization blocks.
func tinyOptions() SynthOptions {
	return SynthOptions{Dim: 64, Layers: 3, Heads: 4, KVHeads: 2, FFN: 96, Vocab: 300, DType: kernels.F32, Seed: 1}
}

// synthBytes synthesises a model in memory.
func synthBytes(t testing.TB, o SynthOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Synthesize(&buf, o); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// synthFile synthesises a model into a temporary file and returns its path.
func synthFile(t testing.TB, o SynthOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synth.gguf")
	if err := os.WriteFile(path, synthBytes(t, o), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSynthesizeLoads(t *testing.T) {
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.BF16, kernels.Q8_0, kernels.Q4_0} {
		t.Run(dt.String(), func(t *testing.T) {
			o := tinyOptions()
			o.DType = dt
			m, err := FromGGUF(synthBytes(t, o))
			if err != nil {
				t.Fatal(err)
			}
			want := Config{Arch: "llama", VocabSize: 300, Dim: 64, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 96,
				NormEps: 1e-5, ContextLength: 2048, RopeBase: 10000, RopeDim: 16}
			if m.Config != want {
				t.Errorf("config %+v, want %+v", m.Config, want)
			}
			q, _ := m.Tensor("blk.1.attn_q.weight")
			if q.DType != dt {
				t.Errorf("attn_q is %s", q.DType)
			}
			n, _ := m.Tensor("blk.1.ffn_norm.weight")
			if n.DType != kernels.F32 || math.Float32frombits(binary.LittleEndian.Uint32(n.Data)) != 1 {
				t.Errorf("norm is %s, first gain %x", n.DType, n.Data[:4])
			}
			// Weights are N(0, 1/fan_in): check the standard deviation of a matrix.
			d, _ := m.Tensor("blk.0.ffn_down.weight")
			vals := make([]float32, d.Elements())
			if err := kernels.Dequantize(vals, d.DType, d.Data); err != nil {
				t.Fatal(err)
			}
			var sum, sq float64
			for _, v := range vals {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			mean, std := sum/float64(len(vals)), math.Sqrt(sq/float64(len(vals)))
			if want := 1 / math.Sqrt(96); math.Abs(mean) > 0.01 || math.Abs(std-want)/want > 0.1 {
				t.Errorf("ffn_down mean %.4f std %.4f, want 0 and %.4f", mean, std, want)
			}
			if toks, _ := m.Meta.Strings("tokenizer.ggml.tokens"); len(toks) != 300 || toks[3] != "<0x00>" {
				t.Errorf("vocabulary of %d tokens", len(toks))
			}
		})
	}
}

func TestSynthesizeDeterministic(t *testing.T) {
	o := tinyOptions()
	o.DType = kernels.Q8_0
	a := synthBytes(t, o)
	prev := runtime.GOMAXPROCS(1)
	b := synthBytes(t, o)
	runtime.GOMAXPROCS(prev)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different files on 1 and many CPUs")
	}
	o.Seed++
	if bytes.Equal(a, synthBytes(t, o)) {
		t.Error("a different seed gave the same file")
	}
}

func TestSynthesizeExperts(t *testing.T) {
	o := tinyOptions()
	o.Experts, o.ExpertsUsed = 4, 2
	m, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Experts != 4 || m.Config.ExpertsUsed != 2 {
		t.Errorf("experts %d/%d", m.Config.Experts, m.Config.ExpertsUsed)
	}
	for _, name := range []string{"blk.2.ffn_gate_inp.weight", "blk.2.ffn_gate_exps.weight", "blk.2.ffn_up_exps.weight", "blk.2.ffn_down_exps.weight"} {
		if _, ok := m.Tensor(name); !ok {
			t.Errorf("%s missing", name)
		}
	}
	if _, ok := m.Tensor("blk.0.ffn_gate.weight"); ok {
		t.Error("a MoE model has a dense ffn_gate")
	}
}

func TestSynthesizeVocabFrom(t *testing.T) {
	src, err := FromGGUF(stories260K(t))
	if err != nil {
		t.Fatal(err)
	}
	o := tinyOptions()
	o.Vocab = 0
	o.VocabFrom = src.Meta
	m, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.VocabSize != 512 {
		t.Errorf("vocabulary size %d, want 512", m.Config.VocabSize)
	}
	a, _ := TokenizerDigest(src.Meta, nil, nil)
	b, _ := TokenizerDigest(m.Meta, nil, nil)
	if a != b {
		t.Error("the copied tokenizer differs from its source")
	}
	o.Vocab = 300
	if err := Synthesize(new(bytes.Buffer), o); err == nil || !strings.Contains(err.Error(), "does not match the 512 tokens") {
		t.Errorf("mismatched vocabulary: err = %v", err)
	}
}

func TestSynthesizeProgress(t *testing.T) {
	o := tinyOptions()
	var last, total int64
	calls := 0
	o.Progress = func(w, tot int64) {
		if w < last {
			t.Fatalf("progress went back from %d to %d", last, w)
		}
		last, total = w, tot
		calls++
	}
	b := synthBytes(t, o)
	if calls < 10 || last != total || total != int64(len(b)) {
		t.Errorf("%d calls, last %d of %d, file %d bytes", calls, last, total, len(b))
	}
}

func TestSynthesizeErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*SynthOptions)
		want string
	}{
		{"heads", func(o *SynthOptions) { o.Heads = 5 }, "not a multiple of head count 5"},
		{"kv heads", func(o *SynthOptions) { o.KVHeads = 3 }, "KV head count 3"},
		{"block", func(o *SynthOptions) { o.DType = kernels.Q4_0; o.FFN = 100 }, "feed-forward width 100 must be multiples"},
		{"type", func(o *SynthOptions) { o.DType = 77 }, "type(77) is not supported"},
		{"layers", func(o *SynthOptions) { o.Layers = 0 }, "block count 0"},
		{"vocab", func(o *SynthOptions) { o.Vocab = 0 }, "vocabulary size 0"},
		{"experts used", func(o *SynthOptions) { o.Experts = 4 }, "experts used 0"},
		{"no tokens", func(o *SynthOptions) { o.VocabFrom = NewMetadata(KV{"x", "y"}) }, "no tokenizer.ggml.tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tinyOptions()
			tt.edit(&o)
			err := Synthesize(new(bytes.Buffer), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// BenchmarkSynthesizeTinyLlama writes the TinyLlama-1.1B shape in q8_0 (1.2 GB) to
// the null device: go test -bench SynthesizeTinyLlama -benchtime 1x.
func BenchmarkSynthesizeTinyLlama(b *testing.B) {
	o := SynthOptions{Dim: 2048, Layers: 22, Heads: 32, KVHeads: 4, FFN: 5632, Vocab: 32000, DType: kernels.Q8_0}
	for b.Loop() {
		cw := &countingWriter{w: io.Discard}
		if err := Synthesize(cw, o); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(cw.n)
	}
}

// TestSynthesizeVocabOnlyFile takes the vocabulary from a GGUF file without
// tensors, as llama.cpp's ggml-vocab-*.gguf files are.
func TestSynthesizeVocabOnlyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	vocab := append([]KV{{"general.architecture", "llama"}}, byteVocabulary(333)...)
	if err := WriteGGUF(f, NewMetadata(vocab...)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenGGUF(path); err == nil {
		t.Fatal("a vocabulary-only file loaded as a model")
	}
	md, err := ReadGGUFMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	o := tinyOptions()
	o.Vocab, o.VocabFrom = 0, md
	m, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.VocabSize != 333 {
		t.Errorf("vocabulary size %d, want 333", m.Config.VocabSize)
	}
	if _, err := ReadGGUFMetadata(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("metadata of a missing file")
	}
}
