package opencl_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// BenchmarkDecode: greedy decode tokens/s on the OpenCL device and on the CPU
// backend, for stories260K (1 MB of weights: launch- and copy-bound) and a
// synthetic 4-layer Q8_0 model of 1024 wide (≈ 50 MB: bandwidth-bound), with
// the bandwidth the weights were read at and its share of the host's (on
// PoCL the device is the host's CPU, so the host's triad is its ceiling).
//
//	go test -run '^$' -bench Decode -benchtime 1x ./kernels/opencl
func BenchmarkDecode(b *testing.B) {
	var synth bytes.Buffer
	if err := model.Synthesize(&synth, model.SynthOptions{Dim: 1024, Layers: 4, Heads: 16, KVHeads: 4, FFN: 2816,
		Vocab: 2048, DType: kernels.Q8_0, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	triad := kernels.MeasureBandwidth(runtime.NumCPU(), 0)
	b.Logf("host triad bandwidth %.1f GB/s (%d threads)", triad/1e9, runtime.NumCPU())
	for _, mdl := range []struct {
		name   string
		gguf   []byte
		tokens int
	}{{"stories260K", assets.DefaultModel, 124}, {"synth-q8_0-1024x4", synth.Bytes(), 64}} {
		for _, kind := range []string{"opencl", "cpu"} {
			b.Run(mdl.name+"/"+kind, func(b *testing.B) {
				var be kernels.Backend = open(b)
				if kind == "cpu" {
					cpu, err := kernels.NewCPU()
					if err != nil {
						b.Fatal(err)
					}
					defer cpu.Close()
					be = cpu
				}
				m, err := model.FromGGUF(mdl.gguf)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				st, err := llama.NewStage(m, be)
				if err != nil {
					b.Fatal(err)
				}
				tok, err := pipeline.TokenizerFor(m)
				if err != nil {
					b.Fatal(err)
				}
				// A token reads every matrix once, the embedding but one row.
				perToken := m.Size()
				if t, ok := m.Tensor("token_embd.weight"); ok {
					perToken -= int64(len(t.Data)) - int64(len(t.Data))/t.Shape[len(t.Shape)-1]
				}
				open := func(_ context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(st, maxLen) }
				var tokens int
				var decode float64
				for b.Loop() {
					res, err := pipeline.Generate(context.Background(), open, tok, pipeline.Request{
						Prompt: "Once upon a time", MaxTokens: mdl.tokens, OnText: func(string) error { return nil }})
					if err != nil {
						b.Fatal(err)
					}
					tokens += len(res.Tokens) - 1
					decode += res.Decode.Seconds()
				}
				tps := float64(tokens) / decode
				bw := tps * float64(perToken)
				b.ReportMetric(tps, "tokens/s")
				b.ReportMetric(bw/1e9, "GB/s")
				b.ReportMetric(100*bw/triad, "%triad")
				b.Logf("%s on %s: %.1f tokens/s, %s a token, %.2f GB/s = %.1f%% of the host's triad",
					mdl.name, be.Name(), tps, mib(perToken), bw/1e9, 100*bw/triad)
			})
		}
	}
}

// BenchmarkMatVec: one decode product of a 4096×4096 matrix per type, on the
// device and on the CPU, as GB/s of weights read (and the share of the host's
// triad bandwidth); per-call copies and launch included, as decode pays them.
func BenchmarkMatVec(b *testing.B) {
	triad := kernels.MeasureBandwidth(runtime.NumCPU(), 0)
	const rows, cols = 4096, 4096
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.Q8_0, kernels.Q4_0, kernels.Q4_K} {
		src := make([]float32, rows*cols)
		for i := range src {
			src[i] = float32(i%17-8) / 16
		}
		rb, _ := dt.RowBytes(rows * cols)
		data := make([]byte, rb)
		if err := kernels.Quantize(data, dt, src); err != nil {
			b.Fatal(err)
		}
		for _, kind := range []string{"opencl", "cpu"} {
			b.Run(fmt.Sprintf("%s/%s", dt, kind), func(b *testing.B) {
				var be kernels.Backend = open(b)
				if kind == "cpu" {
					cpu, err := kernels.NewCPU()
					if err != nil {
						b.Fatal(err)
					}
					defer cpu.Close()
					be = cpu
				}
				m, err := be.NewMatrix(dt, rows, cols, data)
				if err != nil {
					b.Fatal(err)
				}
				x, dst := make([]float32, cols), make([]float32, rows)
				be.MatMul(dst, x, 1, m)
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					be.MatMul(dst, x, 1, m)
				}
				bw := float64(len(data)) * float64(b.N) / b.Elapsed().Seconds()
				b.ReportMetric(100*bw/triad, "%triad")
			})
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
