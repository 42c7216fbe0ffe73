package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// A model of about 100M parameters (GPT-2-small's width, Llama's layout) in Q8_0,
// synthesized once into the user cache directory.
var benchShape = model.SynthOptions{
	Dim: 768, Layers: 12, Heads: 12, KVHeads: 12, FFN: 2048, Vocab: 32000, DType: kernels.Q8_0, Seed: 7,
}

func benchModel(b *testing.B) *model.Model {
	b.Helper()
	path, err := model.CachedSynthesis(benchShape)
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkPipelineLatency compares the per-token decode latency of a 4-stage
// chain over loopback TCP with the same model in one process, step by step in the
// same run: the ratio is the cost of the network (framing, encryption, copies, four
// hops down and the logits back).
func BenchmarkPipelineLatency(b *testing.B) {
	m := benchModel(b)
	ctx := context.Background()
	n, err := Start(ctx, WithModel(m), WithNodes(4))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	client, err := n.Client(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mdl, err := client.OpenModel(ctx, n.ModelID, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer mdl.Close()
	const window = 256
	remoteRun, err := mdl.Opener()(ctx, window+1)
	if err != nil {
		b.Fatal(err)
	}
	remote := remoteRun.(*pipeline.Remote)
	defer func() { remote.Close() }()
	remote.SetTopK(1) // greedy decoding, as Generate would ask

	if hops := len(remote.Route()); hops != 4 {
		b.Fatalf("chain of %d hops, want 4", hops)
	}

	be, err := kernels.NewCPU()
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	st, err := llama.NewStage(m, be)
	if err != nil {
		b.Fatal(err)
	}
	local, err := pipeline.NewLocal(st, window+1)
	if err != nil {
		b.Fatal(err)
	}
	logits := make([]float32, m.Config.VocabSize)
	tok := []int32{1}
	var tLocal, tRemote time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%window == 0 {
			b.StopTimer()
			remote.Close()
			if remoteRun, err = mdl.Opener()(ctx, window+1); err != nil {
				b.Fatal(err)
			}
			remote = remoteRun.(*pipeline.Remote)
			remote.SetTopK(1)
			if local, err = pipeline.NewLocal(st, window+1); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		t0 := time.Now()
		if err := local.Forward(ctx, tok, logits); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := remote.Forward(ctx, tok, logits); err != nil {
			b.Fatal(err)
		}
		tLocal += t1.Sub(t0)
		tRemote += time.Since(t1)
		tok[0] = int32(2 + i%1000)
	}
	b.ReportMetric(float64(tLocal.Microseconds())/float64(b.N)/1000, "ms/token-local")
	b.ReportMetric(float64(tRemote.Microseconds())/float64(b.N)/1000, "ms/token-4stage")
	b.ReportMetric(float64(tRemote)/float64(tLocal), "ratio")
}

// BenchmarkFirstToken20 measures, in a network of 20 volunteers, the time from a
// client's start (a new node with a new identity joining through the bootstrap
// node) to its first generated token.
func BenchmarkFirstToken20(b *testing.B) {
	ctx := context.Background()
	n, err := Start(ctx, WithNodes(20))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := n.Client(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m, err := c.OpenModel(ctx, n.ModelID, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		first := time.Duration(0)
		_, err = m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 1,
			OnText: func(string) error { first = time.Since(t0); return nil }})
		if err != nil {
			b.Fatal(err)
		}
		total += first
		m.Close()
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-to-first-token")
}

// BenchmarkRecovery kills the middle stage a chain uses (its host closes, as in a
// crash) and measures the time from the failure to the next token, replay of the
// sequence so far included, at a context of 64 positions.
func BenchmarkRecovery(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n, err := Start(ctx, WithSplit([2]int{0, 2}, [2]int{2, 4}, [2]int{2, 4}, [2]int{4, 5}))
		if err != nil {
			b.Fatal(err)
		}
		c, err := n.Client(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m, err := c.OpenModel(ctx, n.ModelID, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		tokens := 0
		b.StartTimer()
		res, err := m.Generate(ctx, pipeline.Request{Prompt: "Once upon a time", MaxTokens: 80,
			OnText: func(string) error {
				if tokens++; tokens == 60 {
					for _, v := range n.Volunteers[1:3] {
						if v.StageServer().Sessions() > 0 {
							v.Host().Close()
						}
					}
				}
				return nil
			}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if len(res.Recoveries) != 1 {
			b.Fatalf("%d failovers, want 1", len(res.Recoveries))
		}
		total += res.Recoveries[0]
		m.Close()
		n.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-to-recover")
}
