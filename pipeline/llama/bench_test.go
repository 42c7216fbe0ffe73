package llama

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// The benchmark model: TinyLlama-1.1B's shape in Q8_0 with random weights. Speed
// depends on shapes and types, not on the values, so a synthesized model measures
// what a downloaded one would. IMECE_BENCH_MODEL points at another GGUF file instead.
var tinyLlamaShape = model.SynthOptions{
	Dim: 2048, Layers: 22, Heads: 32, KVHeads: 4, FFN: 5632, Vocab: 32000,
	DType: kernels.Q8_0, Seed: 1,
}

// benchModel returns the benchmark model, synthesizing it once into the user cache
// directory (about 1.2 GB, a few tens of seconds) and reusing it afterwards.
func benchModel(b *testing.B) *model.Model {
	b.Helper()
	path := os.Getenv("IMECE_BENCH_MODEL")
	if path == "" {
		var err error
		if path, err = model.CachedSynthesis(tinyLlamaShape); err != nil {
			b.Fatal(err)
		}
	}
	m, err := model.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// bandwidth is the machine's triad bandwidth, measured once per benchmark binary
// run: the ceiling decode is reported against.
var bandwidth = sync.OnceValue(func() float64 {
	bw := kernels.MeasureBandwidth(runtime.NumCPU(), 0)
	// Hand the triad's arrays back to the OS so they do not count as the engine's
	// resident memory.
	debug.FreeOSMemory()
	return bw
})

// weightBytesPerToken is what a decode step reads: every layer matrix and the output
// head (the embedding contributes one row).
func weightBytesPerToken(m *model.Model) int64 {
	var n int64
	for _, t := range m.Tensors {
		if len(t.Shape) >= 2 && t.Name != "token_embd.weight" {
			n += int64(len(t.Data))
		}
	}
	if _, ok := m.Tensor("output.weight"); !ok {
		t, _ := m.Tensor("token_embd.weight")
		n += int64(len(t.Data))
	}
	return n
}

// flopsPerToken counts the multiply-adds of one position at context length ctx:
// 2 per weight of every matrix, plus attention's QK and AV products.
func flopsPerToken(m *model.Model, ctx int) float64 {
	var w int64
	for _, t := range m.Tensors {
		if len(t.Shape) >= 2 && t.Name != "token_embd.weight" {
			w += t.Elements()
		}
	}
	c := m.Config
	return 2*float64(w) + float64(c.Layers)*4*float64(ctx)*float64(c.Heads*c.HeadDim)
}

// benchStage loads the benchmark model on a CPU backend with every core.
func benchStage(b *testing.B) (*model.Model, *Stage) {
	m := benchModel(b)
	be, err := kernels.NewCPU()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	st, err := NewStage(m, be)
	if err != nil {
		b.Fatal(err)
	}
	return m, st
}

// BenchmarkDecode measures generating one token at a time with a short context:
// tokens/s, weight bytes read per second, and that as a share of the triad bandwidth
// measured in the same run.
func BenchmarkDecode(b *testing.B) {
	m, st := benchStage(b)
	bw := bandwidth()
	const ctx0, window = 16, 128
	se, _ := st.NewSession(ctx0 + window)
	c := m.Config
	x := make([]float32, ctx0*c.Dim)
	logits := make([]float32, c.VocabSize)
	prompt := make([]int32, ctx0)
	for i := range prompt {
		prompt[i] = int32(1 + i)
	}
	se.Embed(x, prompt)
	se.Forward(x)
	x = x[:c.Dim]
	tok := []int32{2}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if se.Pos() == ctx0+window {
			se.Rewind(ctx0)
		}
		se.Embed(x, tok)
		se.Forward(x)
		se.Logits(logits, x)
		tok[0] = argmax(logits)
	}
	b.StopTimer()
	perTok := b.Elapsed().Seconds() / float64(b.N)
	bytesPerSec := float64(weightBytesPerToken(m)) / perTok
	b.ReportMetric(1/perTok, "tokens/s")
	b.ReportMetric(bytesPerSec/1e9, "weightGB/s")
	b.ReportMetric(bw/1e9, "triadGB/s")
	b.ReportMetric(bytesPerSec/bw, "ofTriad")
	b.ReportMetric(rssRatio(m), "rss/file")
}

// BenchmarkPrefill128 measures processing a 128-token prompt in one batch.
func BenchmarkPrefill128(b *testing.B) {
	m, st := benchStage(b)
	const n = 128
	c := m.Config
	se, _ := st.NewSession(n)
	x := make([]float32, n*c.Dim)
	logits := make([]float32, c.VocabSize)
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32(1 + i*7)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		se.Rewind(0)
		se.Embed(x, prompt)
		se.Forward(x)
		se.Logits(logits, x)
	}
	b.StopTimer()
	per := b.Elapsed().Seconds() / float64(b.N)
	var flops float64
	for p := 1; p <= n; p++ {
		flops += flopsPerToken(m, p)
	}
	b.ReportMetric(n/per, "tokens/s")
	b.ReportMetric(flops/per/1e9, "GFLOP/s")
}

// rssRatio is this process's resident size over the model file's: the memory cost
// of serving the model, mapped weights included.
func rssRatio(m *model.Model) float64 {
	st, err := os.Stat(m.Path)
	if err != nil {
		return 0
	}
	return float64(residentBytes()) / float64(st.Size())
}

func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
