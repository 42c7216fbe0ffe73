package llama

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTopK(t *testing.T) {
	tests := []struct {
		v    []float32
		k    int
		want []int
	}{
		{[]float32{1, 5, 3, 5, 2}, 2, []int{1, 3}},
		{[]float32{1, 5, 3, 5, 2}, 3, []int{1, 3, 2}},
		{[]float32{9, 1}, 1, []int{0}},
		{[]float32{-1, -2, -3, 0}, 2, []int{3, 0}},
		{[]float32{2, 2, 2}, 2, []int{0, 1}},
	}
	for _, tt := range tests {
		got := topK(make([]int, tt.k), tt.v)
		if !slices.Equal(got, tt.want) {
			t.Errorf("topK(%v, %d) = %v, want %v", tt.v, tt.k, got, tt.want)
		}
	}
}

func TestPartialSortMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(300)
		k := 1 + r.IntN(n)
		v := make([]int, n)
		for i := range v {
			v[i] = r.IntN(20) // many duplicates
		}
		want := slices.Clone(v)
		slices.Sort(want)
		partialSort(v, k, func(a, b int) int { return a - b })
		if !slices.Equal(v[:k], want[:k]) {
			t.Fatalf("n=%d k=%d: got %v want %v", n, k, v[:k], want[:k])
		}
	}
}

func TestSamplerGreedy(t *testing.T) {
	s := NewSampler(4, SamplerConfig{})
	if got := s.Sample([]float32{0.1, 3, 3, -1}); got != 1 {
		t.Fatalf("greedy = %d, want 1 (first of the tied maxima)", got)
	}
}

func TestSamplerRepeatPenaltyChangesGreedyChoice(t *testing.T) {
	s := NewSampler(3, SamplerConfig{RepeatPenalty: 2, RepeatLastN: 4})
	s.Accept(0)
	s.Accept(0)
	// 4/2 = 2 < 3: token 0 loses to token 1 once penalised, once (not twice).
	if got := s.Sample([]float32{4, 3, -5}); got != 1 {
		t.Fatalf("penalised greedy = %d, want 1", got)
	}
	logits := []float32{7, 3, -5}
	s.Sample(logits)
	if logits[0] != 3.5 {
		t.Fatalf("token seen twice penalised to %v, want 3.5 (once)", logits[0])
	}
}

func TestSamplerTopKTopP(t *testing.T) {
	logits := func() []float32 { return []float32{5, 4.9, 0, -10, -10} }
	// With top-k 2 only tokens 0 and 1 can ever be drawn.
	s := NewSampler(5, SamplerConfig{Temperature: 1.5, TopK: 2, Seed: 7})
	seen := map[int32]int{}
	for i := 0; i < 2000; i++ {
		seen[s.Sample(logits())]++
	}
	if len(seen) != 2 || seen[0] == 0 || seen[1] == 0 {
		t.Fatalf("top-k 2 drew %v", seen)
	}
	// Top-p 0.5 keeps only the most likely token (p ≈ 0.52).
	s = NewSampler(5, SamplerConfig{Temperature: 1, TopP: 0.5, Seed: 7})
	for i := 0; i < 200; i++ {
		if got := s.Sample(logits()); got != 0 {
			t.Fatalf("top-p 0.5 drew %d", got)
		}
	}
}

func TestSamplerSeedReproducible(t *testing.T) {
	draw := func(seed uint64) []int32 {
		s := NewSampler(50, SamplerConfig{Temperature: 1, Seed: seed})
		var out []int32
		for i := 0; i < 100; i++ {
			l := make([]float32, 50)
			for j := range l {
				l[j] = float32(j%7) * 0.3
			}
			out = append(out, s.Sample(l))
		}
		return out
	}
	if a, b := draw(42), draw(42); !slices.Equal(a, b) {
		t.Fatal("same seed gave different tokens")
	}
	if a, b := draw(42), draw(43); slices.Equal(a, b) {
		t.Fatal("different seeds gave the same 100 tokens")
	}
}

func TestSamplerTemperatureDistribution(t *testing.T) {
	// Two tokens with logits differing by ln 3 at temperature 1: p = 3/4, 1/4.
	s := NewSampler(2, SamplerConfig{Temperature: 1, Seed: 1})
	n0 := 0
	const trials = 20000
	for i := 0; i < trials; i++ {
		if s.Sample([]float32{1.0986123, 0}) == 0 {
			n0++
		}
	}
	if f := float64(n0) / trials; f < 0.73 || f > 0.77 {
		t.Fatalf("P(token 0) = %.3f, want 0.75", f)
	}
}

func TestSamplerAllocatesNothing(t *testing.T) {
	s := NewSampler(1000, SamplerConfig{Temperature: 0.8, TopK: 40, TopP: 0.9, RepeatPenalty: 1.1, RepeatLastN: 64, Seed: 3})
	l := make([]float32, 1000)
	allocs := testing.AllocsPerRun(50, func() {
		for i := range l {
			l[i] = float32(i % 13)
		}
		s.Accept(s.Sample(l))
	})
	if allocs != 0 {
		t.Fatalf("Sample allocates %v times per call", allocs)
	}
}
