package model

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/imece/imece/kernels"
)

// SynthOptions describes a model of random weights: any LLaMA shape, for tests and
// benchmarks that need a model of a given size but not a trained one.
type SynthOptions struct {
	Dim     int // embedding width
	Layers  int
	Heads   int
	KVHeads int // 0 means Heads
	FFN     int // feed-forward width (of each expert)
	// Vocab is the vocabulary size. It may be 0 when VocabFrom supplies one.
	Vocab int
	// DType is the type of every matrix (token embedding included), as llama.cpp's
	// quantizer would store them; norms and the expert router stay f32. The row
	// widths (Dim, FFN) must be whole blocks of it.
	DType kernels.DType
	// Seed makes the weights reproducible: the same options give the same bytes,
	// whatever the number of CPUs.
	Seed uint64

	// Experts > 0 makes a mixture-of-experts model (Mixtral layout: ffn_gate_inp and
	// the three 3-D *_exps tensors) routing each token to ExpertsUsed experts.
	Experts     int
	ExpertsUsed int

	ContextLength int     // 0 means 2048
	RopeBase      float32 // 0 means 10000
	Name          string  // general.name; empty gives a name from the shape

	// VocabFrom, when it has entries, supplies the tokenizer: every tokenizer.* entry
	// is copied from it (typically another GGUF model's Meta), so the synthetic model
	// tokenizes like that one. Vocab must then be 0 or the size of its vocabulary.
	// Without it, a vocabulary of at least 259 tokens gets a minimal
	// SentencePiece-style one (<unk>, <s>, </s>, the 256 byte tokens, then unused
	// tokens) so that any text can be encoded; a smaller one gets none.
	VocabFrom Metadata

	// Progress, when set, is called as the file is written with the bytes written
	// so far and the total, for a progress bar.
	Progress func(written, total int64)
}

// chunkElems is how many weights one generator goroutine produces at a time. The
// random stream of each chunk is seeded from (Seed, tensor, chunk), so it must not
// depend on the machine: the file is then identical however many CPUs made it.
const chunkElems = 1 << 16

// Synthesize writes a GGUF "llama" model of random weights described by opts.
// Weights are drawn from N(0, 1/fan_in) so that every matrix product keeps its
// input's scale and activations stay of order one through any depth; norm gains are
// 1; the token embedding is N(0, 1), the scale of the residual stream. Tensors are
// generated, quantized with kernels.Quantize and written one at a time, in parallel
// chunks, so memory stays small whatever the model size.
func Synthesize(w io.Writer, opts SynthOptions) error {
	md, tensors, err := synthPlan(&opts)
	if err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	if opts.Progress != nil {
		total, err := GGUFSize(md, tensors...)
		if err != nil {
			return fmt.Errorf("synthesize: %w", err)
		}
		w = &countingWriter{w: w, report: func(n int64) { opts.Progress(n, total) }}
	}
	if err := WriteGGUF(w, md, tensors...); err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	return nil
}

// synthPlan validates the options and lays out the metadata and tensors.
func synthPlan(o *SynthOptions) (Metadata, []TensorSource, error) {
	if o.KVHeads == 0 {
		o.KVHeads = o.Heads
	}
	if o.ContextLength == 0 {
		o.ContextLength = 2048
	}
	if o.RopeBase == 0 {
		o.RopeBase = 10000
	}
	if !o.DType.Valid() {
		return Metadata{}, nil, fmt.Errorf("tensor type %s is not supported", o.DType)
	}
	var tokenizer []KV
	if o.VocabFrom.Len() > 0 {
		tokens, ok := o.VocabFrom.Strings("tokenizer.ggml.tokens")
		if !ok {
			return Metadata{}, nil, errors.New("the vocabulary source has no tokenizer.ggml.tokens")
		}
		if o.Vocab == 0 {
			o.Vocab = len(tokens)
		}
		if o.Vocab != len(tokens) {
			return Metadata{}, nil, fmt.Errorf("vocabulary size %d does not match the %d tokens of the vocabulary source", o.Vocab, len(tokens))
		}
		for _, kv := range o.VocabFrom.All() {
			if strings.HasPrefix(kv.Key, "tokenizer.") {
				tokenizer = append(tokenizer, kv)
			}
		}
	} else if o.Vocab >= 3+256 {
		tokenizer = byteVocabulary(o.Vocab)
	}
	if o.Heads <= 0 || o.Dim%o.Heads != 0 {
		return Metadata{}, nil, fmt.Errorf("embedding width %d is not a multiple of head count %d", o.Dim, o.Heads)
	}
	c := Config{
		Arch: "llama", VocabSize: o.Vocab, Dim: o.Dim, Layers: o.Layers, Heads: o.Heads, KVHeads: o.KVHeads,
		HeadDim: o.Dim / o.Heads, FFN: o.FFN, NormEps: 1e-5, ContextLength: o.ContextLength,
		RopeBase: o.RopeBase, RopeDim: o.Dim / o.Heads, Experts: o.Experts, ExpertsUsed: o.ExpertsUsed,
	}
	if err := c.Validate(); err != nil {
		return Metadata{}, nil, err
	}
	if bs := o.DType.BlockSize(); o.Dim%bs != 0 || o.FFN%bs != 0 {
		return Metadata{}, nil, fmt.Errorf("%s stores rows in blocks of %d: embedding width %d and feed-forward width %d must be multiples of it",
			o.DType, bs, o.Dim, o.FFN)
	}
	name := o.Name
	if name == "" {
		name = fmt.Sprintf("synthetic-d%d-l%d-h%d-kv%d-ffn%d-v%d-%s", o.Dim, o.Layers, o.Heads, o.KVHeads, o.FFN, o.Vocab, o.DType)
		if o.Experts > 0 {
			name += fmt.Sprintf("-moe%dx%d", o.Experts, o.ExpertsUsed)
		}
	}
	md := NewMetadata(
		KV{"general.architecture", "llama"},
		KV{"general.name", name},
		KV{"general.description", fmt.Sprintf("random weights (imece model synth, seed %d)", o.Seed)},
		KV{"llama.context_length", uint32(c.ContextLength)},
		KV{"llama.embedding_length", uint32(c.Dim)},
		KV{"llama.block_count", uint32(c.Layers)},
		KV{"llama.feed_forward_length", uint32(c.FFN)},
		KV{"llama.attention.head_count", uint32(c.Heads)},
		KV{"llama.attention.head_count_kv", uint32(c.KVHeads)},
		KV{"llama.rope.dimension_count", uint32(c.RopeDim)},
		KV{"llama.rope.freq_base", c.RopeBase},
		KV{"llama.attention.layer_norm_rms_epsilon", c.NormEps},
		KV{"llama.vocab_size", uint32(c.VocabSize)},
	)
	if ft, ok := llamaFileType(o.DType); ok {
		md.Set("general.file_type", ft)
	}
	if c.Experts > 0 {
		md.Set("llama.expert_count", uint32(c.Experts))
		md.Set("llama.expert_used_count", uint32(c.ExpertsUsed))
	}
	for _, kv := range tokenizer {
		md.Set(kv.Key, kv.Value)
	}

	var ts []TensorSource
	add := func(name string, dt kernels.DType, std float64, shape ...int64) {
		ts = append(ts, synthTensor(o.Seed, uint64(len(ts)), name, dt, std, shape))
	}
	dim, ffn, vocab := int64(c.Dim), int64(c.FFN), int64(c.VocabSize)
	qDim, kvDim := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	inv := func(fanIn int64) float64 { return 1 / math.Sqrt(float64(fanIn)) }
	add("token_embd.weight", o.DType, 1, dim, vocab)
	add("output_norm.weight", kernels.F32, 0, dim)
	add("output.weight", o.DType, inv(dim), dim, vocab)
	for i := range c.Layers {
		L := func(s string) string { return LayerTensor(i, s) }
		add(L("attn_norm.weight"), kernels.F32, 0, dim)
		add(L("attn_q.weight"), o.DType, inv(dim), dim, qDim)
		add(L("attn_k.weight"), o.DType, inv(dim), dim, kvDim)
		add(L("attn_v.weight"), o.DType, inv(dim), dim, kvDim)
		add(L("attn_output.weight"), o.DType, inv(qDim), qDim, dim)
		add(L("ffn_norm.weight"), kernels.F32, 0, dim)
		if c.Experts == 0 {
			add(L("ffn_gate.weight"), o.DType, inv(dim), dim, ffn)
			add(L("ffn_up.weight"), o.DType, inv(dim), dim, ffn)
			add(L("ffn_down.weight"), o.DType, inv(ffn), ffn, dim)
			continue
		}
		e := int64(c.Experts)
		add(L("ffn_gate_inp.weight"), kernels.F32, inv(dim), dim, e)
		add(L("ffn_gate_exps.weight"), o.DType, inv(dim), dim, ffn, e)
		add(L("ffn_up_exps.weight"), o.DType, inv(dim), dim, ffn, e)
		add(L("ffn_down_exps.weight"), o.DType, inv(ffn), ffn, dim, e)
	}
	return md, ts, nil
}

// llamaFileType is llama.cpp's general.file_type for a model whose matrices are dt.
func llamaFileType(dt kernels.DType) (uint32, bool) {
	ft, ok := map[kernels.DType]uint32{
		kernels.F32: 0, kernels.F16: 1, kernels.Q4_0: 2, kernels.Q8_0: 7,
		kernels.Q4_K: 15, kernels.Q6_K: 18, kernels.BF16: 32,
	}[dt]
	return ft, ok
}

// byteVocabulary is a minimal SentencePiece-style vocabulary of n ≥ 259 tokens:
// unknown, BOS, EOS, one token per byte (so every text has an encoding through byte
// fallback), and unused tokens to fill the rest.
func byteVocabulary(n int) []KV {
	tokens := make([]string, n)
	types := make([]int32, n)
	scores := make([]float32, n)
	tokens[0], tokens[1], tokens[2] = "<unk>", "<s>", "</s>"
	types[0], types[1], types[2] = 2, 3, 3 // unknown, control, control
	for b := range 256 {
		tokens[3+b], types[3+b] = fmt.Sprintf("<0x%02X>", b), 6 // byte
	}
	for i := 259; i < n; i++ {
		tokens[i], types[i] = fmt.Sprintf("<unused%d>", i-259), 5 // unused
	}
	return []KV{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(2)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.ggml.add_eos_token", false},
	}
}

// synthTensor is a tensor of N(0, std²) weights (all ones when std is 0), produced
// in chunks of whole rows generated and quantized in parallel and written in order.
func synthTensor(seed, index uint64, name string, dt kernels.DType, std float64, shape []int64) TensorSource {
	return TensorSource{Name: name, Shape: shape, DType: dt, WriteData: func(w io.Writer) error {
		cols := int(shape[0])
		rows := 1
		for _, d := range shape[1:] {
			rows *= int(d)
		}
		rowBytes, err := dt.RowBytes(int64(cols))
		if err != nil {
			return err
		}
		perChunk := max(1, chunkElems/cols)
		chunks := (rows + perChunk - 1) / perChunk
		workers := runtime.GOMAXPROCS(0)
		batch := min(chunks, 2*workers)
		bufs := make([][]byte, batch)
		scratch := make([][]float32, batch)
		for b := range bufs {
			bufs[b] = make([]byte, perChunk*int(rowBytes))
			scratch[b] = make([]float32, perChunk*cols)
		}
		errs := make([]error, batch)
		for first := 0; first < chunks; first += batch {
			n := min(batch, chunks-first)
			var wg sync.WaitGroup
			for b := range n {
				wg.Go(func() {
					c := first + b
					nrows := min(perChunk, rows-c*perChunk)
					src := scratch[b][:nrows*cols]
					if std == 0 {
						for i := range src {
							src[i] = 1
						}
					} else {
						// One stream per (seed, tensor, chunk): independent of
						// scheduling, so the file is reproducible.
						rng := rand.New(rand.NewPCG(seed, index<<32|uint64(c)))
						for i := range src {
							src[i] = float32(rng.NormFloat64() * std)
						}
					}
					bufs[b] = bufs[b][:nrows*int(rowBytes)]
					errs[b] = kernels.Quantize(bufs[b], dt, src)
				})
			}
			wg.Wait()
			for b := range n {
				if errs[b] != nil {
					return errs[b]
				}
				if _, err := w.Write(bufs[b]); err != nil {
					return err
				}
			}
		}
		return nil
	}}
}

// SynthesizeFile writes the model of opts to path through a temporary file in the
// same directory, renamed into place only when complete: a failed or interrupted
// synthesis leaves no half-written model behind.
func SynthesizeFile(path string, opts SynthOptions) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 4<<20)
	if err := Synthesize(w, opts); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("synthesize: %w", err)
	}
	return nil
}

// CachedSynthesis returns the path of the model of opts in the user's cache
// directory (imece-bench/), synthesizing it the first time: benchmarks at real
// sizes then pay for the gigabyte once, not per run.
func CachedSynthesis(opts SynthOptions) (string, error) {
	if opts.Progress != nil || opts.VocabFrom.Len() > 0 {
		return "", errors.New("synthesize: a cached model is described by its shape alone")
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "imece-bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("synthesize: %w", err)
	}
	o := opts
	if _, _, err := synthPlan(&o); err != nil {
		return "", fmt.Errorf("synthesize: %w", err)
	}
	name := fmt.Sprintf("synthetic-d%d-l%d-h%d-kv%d-ffn%d-v%d-e%dx%d-%s-seed%d.gguf",
		o.Dim, o.Layers, o.Heads, o.KVHeads, o.FFN, o.Vocab, o.Experts, o.ExpertsUsed, o.DType, o.Seed)
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, SynthesizeFile(path, opts)
}
