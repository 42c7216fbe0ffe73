package llama

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerConfig chooses how the next token is drawn from the logits. The zero value
// is greedy decoding.
type SamplerConfig struct {
	// Temperature divides the logits; 0 means greedy (always the most likely token).
	Temperature float32
	// TopK keeps only the K most likely tokens; 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability reaches P;
	// 0 or 1 keeps all.
	TopP float32
	// RepeatPenalty > 1 makes tokens seen in the last RepeatLastN less likely, as
	// llama.cpp does: positive logits are divided by it, negative ones multiplied.
	RepeatPenalty float32
	RepeatLastN   int
	// Seed makes sampling reproducible: the same seed, logits and configuration give
	// the same tokens.
	Seed uint64
}

// Sampler draws tokens from logits. It keeps its scratch space and the recent-token
// window, so sampling allocates nothing. It is not safe for concurrent use.
type Sampler struct {
	cfg     SamplerConfig
	rng     *rand.Rand
	cand    []candidate
	history []int32 // ring of the last RepeatLastN tokens
	hpos    int
	hlen    int
}

type candidate struct {
	id    int32
	logit float32
	p     float64
}

// NewSampler makes a sampler for a vocabulary of the given size.
func NewSampler(vocab int, cfg SamplerConfig) *Sampler {
	s := &Sampler{
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		cand: make([]candidate, vocab),
	}
	if cfg.RepeatPenalty != 0 && cfg.RepeatPenalty != 1 && cfg.RepeatLastN > 0 {
		s.history = make([]int32, cfg.RepeatLastN)
	}
	return s
}

// Accept records a token of the sequence (prompt or generated) for the repetition
// penalty.
func (s *Sampler) Accept(tok int32) {
	if s.history == nil {
		return
	}
	s.history[s.hpos] = tok
	s.hpos = (s.hpos + 1) % len(s.history)
	s.hlen = min(s.hlen+1, len(s.history))
}

// Sample picks the next token. It applies, in llama.cpp's order, the repetition
// penalty, top-k, top-p, temperature, then draws; logits are modified in place.
func (s *Sampler) Sample(logits []float32) int32 {
	s.penalise(logits)
	if s.cfg.Temperature <= 0 {
		return argmax(logits)
	}
	c := s.cand[:len(logits)]
	for i, l := range logits {
		c[i] = candidate{id: int32(i), logit: l}
	}
	byLogit := func(a, b candidate) int {
		if r := cmp.Compare(b.logit, a.logit); r != 0 {
			return r
		}
		return cmp.Compare(a.id, b.id)
	}
	if k := s.cfg.TopK; k > 0 && k < len(c) {
		partialSort(c, k, byLogit)
		c = c[:k]
	} else {
		slices.SortFunc(c, byLogit)
	}
	if p := s.cfg.TopP; p > 0 && p < 1 {
		softmax(c, 1)
		var cum float64
		for i := range c {
			cum += c[i].p
			if cum >= float64(p) {
				c = c[:i+1]
				break
			}
		}
	}
	softmax(c, s.cfg.Temperature)
	r := s.rng.Float64()
	var cum float64
	for _, x := range c {
		cum += x.p
		if r < cum {
			return x.id
		}
	}
	return c[len(c)-1].id
}

func (s *Sampler) penalise(logits []float32) {
	if s.history == nil {
		return
	}
	pen := s.cfg.RepeatPenalty
	for i := 0; i < s.hlen; i++ {
		t := s.history[i]
		if t < 0 || int(t) >= len(logits) || seenBefore(s.history[:s.hlen], i) {
			continue
		}
		if logits[t] > 0 {
			logits[t] /= pen
		} else {
			logits[t] *= pen
		}
	}
}

// seenBefore reports whether h[i] occurs earlier in h, so each distinct token is
// penalised once however often it repeats.
func seenBefore(h []int32, i int) bool {
	for _, t := range h[:i] {
		if t == h[i] {
			return true
		}
	}
	return false
}

// softmax sets p over candidates sorted by descending logit, at temperature t.
func softmax(c []candidate, t float32) {
	mx := float64(c[0].logit)
	var sum float64
	for i := range c {
		c[i].p = math.Exp((float64(c[i].logit) - mx) / float64(t))
		sum += c[i].p
	}
	for i := range c {
		c[i].p /= sum
	}
}

// partialSort moves the k smallest elements by cmp to c[:k], sorted.
func partialSort[T any](c []T, k int, cmp func(a, b T) int) {
	lo, hi := 0, len(c)
	for hi-lo > 1 {
		// Median-of-three quickselect on [lo, hi) for the k-th boundary.
		mid := lo + (hi-lo)/2
		if cmp(c[mid], c[lo]) < 0 {
			c[mid], c[lo] = c[lo], c[mid]
		}
		if cmp(c[hi-1], c[lo]) < 0 {
			c[hi-1], c[lo] = c[lo], c[hi-1]
		}
		if cmp(c[hi-1], c[mid]) < 0 {
			c[hi-1], c[mid] = c[mid], c[hi-1]
		}
		pivot := c[mid]
		i, j := lo, hi-1
		for i <= j {
			for cmp(c[i], pivot) < 0 {
				i++
			}
			for cmp(pivot, c[j]) < 0 {
				j--
			}
			if i <= j {
				c[i], c[j] = c[j], c[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j + 1
		case k > i:
			lo = i
		default:
			lo = hi
		}
	}
	slices.SortFunc(c[:k], cmp)
}

// argmax returns the index of the largest logit, the lowest index among equals.
func argmax(logits []float32) int32 {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return int32(best)
}
