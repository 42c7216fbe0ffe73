package pipeline

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imece/imece/pipeline/llama"
)

func TestTopKOf(t *testing.T) {
	var tk topK
	ids, vals := tk.of([]float32{1, 5, 3, 5, -2, 4}, 3)
	if !slices.Equal(ids, []int32{1, 3, 5}) || !slices.Equal(vals, []float32{5, 5, 4}) {
		t.Fatalf("top 3 = %v %v", ids, vals)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 100; trial++ {
		v := make([]float32, 1+r.IntN(500))
		for i := range v {
			v[i] = float32(r.IntN(50))
		}
		k := 1 + r.IntN(len(v))
		ids, vals := tk.of(v, k)
		order := make([]int32, len(v))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int {
			switch {
			case v[a] > v[b]:
				return -1
			case v[a] < v[b]:
				return 1
			}
			return 0
		})
		if !slices.Equal(ids, order[:k]) {
			t.Fatalf("top %d of %v: %v, want %v", k, v, ids, order[:k])
		}
		for i, id := range ids {
			if vals[i] != v[id] {
				t.Fatal("value does not match id")
			}
		}
	}
}

// TestMeshSamplingMatchesLocal: seeded sampling with top-k, top-p and a repetition
// penalty gives the same text through a chain (which returns only the candidates
// the sampler can need) as in one process (which sees every logit).
func TestMeshSamplingMatchesLocal(t *testing.T) {
	ms := newMesh(t)
	ms.serve(0, 3)
	ms.serve(3, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, sc := range []llama.SamplerConfig{
		{Temperature: 0.9, TopK: 40, TopP: 0.9, Seed: 5},
		{Temperature: 1.2, TopK: 10, RepeatPenalty: 1.3, RepeatLastN: 16, Seed: 6},
		{Temperature: 0.8, Seed: 7}, // no top-k: every logit travels
		{RepeatPenalty: 1.5, RepeatLastN: 8},
	} {
		st, err := llama.NewStage(ms.m, newCPU(t))
		if err != nil {
			t.Fatal(err)
		}
		var local strings.Builder
		_, err = Generate(ctx, func(_ context.Context, n int) (Runner, error) { return NewLocal(st, n) }, ms.tok, Request{
			Prompt: "Once upon a time", MaxTokens: 100, Sampling: sc,
			OnText: func(s string) error { local.WriteString(s); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		var remote strings.Builder
		open := func(ctx context.Context, maxLen int) (Runner, error) {
			return OpenRemote(ctx, newHost(t), ms.id, ms.m.Config.Layers, ms.m.Config.VocabSize, maxLen, ms.peers)
		}
		_, err = Generate(ctx, open, ms.tok, Request{
			Prompt: "Once upon a time", MaxTokens: 100, Sampling: sc,
			OnText: func(s string) error { remote.WriteString(s); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if local.String() != remote.String() {
			t.Fatalf("%+v:\nlocal  %q\nremote %q", sc, local.String(), remote.String())
		}
	}
}
