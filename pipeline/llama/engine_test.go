package llama

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

func stories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func cpu(t testing.TB) kernels.Backend {
	t.Helper()
	be, err := kernels.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// chain runs a prompt and then greedy decoding through consecutive stages, handing
// activations from one to the next as the pipeline does, and returns the logits of
// every step.
func chain(t testing.TB, stages []*Stage, prompt []int32, steps int) [][]float32 {
	t.Helper()
	c := stages[0].Config()
	var sessions []*Session
	for _, st := range stages {
		se, err := st.NewSession(len(prompt) + steps)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, se)
	}
	var out [][]float32
	toks := prompt
	for step := 0; step <= steps; step++ {
		x := make([]float32, len(toks)*c.Dim)
		if err := sessions[0].Embed(x, toks); err != nil {
			t.Fatal(err)
		}
		for _, se := range sessions {
			if err := se.Forward(x); err != nil {
				t.Fatal(err)
			}
		}
		logits := make([]float32, c.VocabSize)
		if err := sessions[len(sessions)-1].Logits(logits, x); err != nil {
			t.Fatal(err)
		}
		out = append(out, logits)
		toks = []int32{argmax(logits)}
	}
	return out
}

func randomPrompt(r *rand.Rand, vocab, n int) []int32 {
	p := []int32{1} // BOS
	for len(p) < n {
		p = append(p, int32(3+r.IntN(vocab-3)))
	}
	return p
}

// TestMatchesReference checks the engine against the plain reference transformer on
// stories260K for several prompts: logits at every step, and the greedy path.
func TestMatchesReference(t *testing.T) {
	m := stories(t)
	st, err := NewStage(m, cpu(t))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	for trial := 0; trial < 4; trial++ {
		prompt := randomPrompt(r, m.Config.VocabSize, 2+r.IntN(12))
		const steps = 40
		got := chain(t, []*Stage{st}, prompt, steps)
		ref := newRef(t, m)
		var want []float64
		for i, tok := range prompt {
			want = ref.step(tok, i)
		}
		pos := len(prompt)
		for step := 0; step <= steps; step++ {
			compareLogits(t, fmt.Sprintf("prompt %v step %d", prompt, step), got[step], want, 1e-4)
			want = ref.step(argmax64(want), pos)
			pos++
		}
	}
}

// TestSplitEquivalence is DESIGN.md §4's promise: [0, L) equals [0, a) then [a, L)
// with the activations handed over, bit for bit, for every a — and for the five-way
// split with one layer per stage.
func TestSplitEquivalence(t *testing.T) {
	m := stories(t)
	be := cpu(t)
	L := m.Config.Layers
	whole, err := NewStage(m, be)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 403, 407, 261, 378, 429}
	want := chain(t, []*Stage{whole}, prompt, 30)
	splits := [][]int{}
	for a := 1; a < L; a++ {
		splits = append(splits, []int{0, a, L})
	}
	splits = append(splits, []int{0, 1, 2, 3, 4, 5}, []int{0, 2, 3, 5})
	for _, cuts := range splits {
		var stages []*Stage
		for i := 0; i+1 < len(cuts); i++ {
			st, err := NewStage(m, be, WithLayers(cuts[i], cuts[i+1]))
			if err != nil {
				t.Fatal(err)
			}
			stages = append(stages, st)
		}
		got := chain(t, stages, prompt, 30)
		for step := range want {
			if !slices.Equal(got[step], want[step]) {
				t.Fatalf("split %v: logits differ from the whole model at step %d", cuts, step)
			}
		}
	}
}

// TestPrefillMatchesStepwise checks that a batched prefill gives what feeding the
// prompt one token at a time gives (up to float rounding: the batched product sums
// in a different order).
func TestPrefillMatchesStepwise(t *testing.T) {
	m := stories(t)
	st, err := NewStage(m, cpu(t))
	if err != nil {
		t.Fatal(err)
	}
	prompt := randomPrompt(rand.New(rand.NewPCG(5, 6)), m.Config.VocabSize, 300) // > maxBatch: chunked
	batched := chain(t, []*Stage{st}, prompt, 5)
	se, _ := st.NewSession(len(prompt))
	x := make([]float32, m.Config.Dim)
	logits := make([]float32, m.Config.VocabSize)
	for _, tok := range prompt {
		if err := se.Embed(x, []int32{tok}); err != nil {
			t.Fatal(err)
		}
		if err := se.Forward(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := se.Logits(logits, x); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(logits))
	for i := range logits {
		want[i] = float64(logits[i])
	}
	compareLogits(t, "batched prefill", batched[0], want, 1e-4)
}

func TestBadInput(t *testing.T) {
	m := stories(t)
	be := cpu(t)
	if _, err := NewStage(m, be, WithLayers(3, 3)); err == nil {
		t.Error("empty layer range accepted")
	}
	if _, err := NewStage(m, be, WithLayers(0, 6)); err == nil {
		t.Error("layer range past the model accepted")
	}
	mid, err := NewStage(m, be, WithLayers(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	se, _ := mid.NewSession(4)
	if err := se.Embed(make([]float32, 64), []int32{1}); err == nil {
		t.Error("middle stage embedded tokens")
	}
	if err := se.Logits(make([]float32, 512), make([]float32, 64)); err == nil {
		t.Error("middle stage produced logits")
	}
	if err := se.Forward(make([]float32, 65)); err == nil {
		t.Error("ragged activations accepted")
	}
	if err := se.Forward(make([]float32, 5*64)); err == nil {
		t.Error("more positions than the session holds accepted")
	}
	first, _ := NewStage(m, be, WithLayers(0, 1))
	se, _ = first.NewSession(4)
	if err := se.Embed(make([]float32, 64), []int32{512}); err == nil {
		t.Error("token past the vocabulary accepted")
	}
	if err := se.Embed(make([]float32, 64), []int32{-1}); err == nil {
		t.Error("negative token accepted")
	}
}

func TestDecodeAllocatesNothing(t *testing.T) {
	m := stories(t)
	st, err := NewStage(m, cpu(t))
	if err != nil {
		t.Fatal(err)
	}
	se, _ := st.NewSession(200)
	x := make([]float32, m.Config.Dim)
	logits := make([]float32, m.Config.VocabSize)
	tok := []int32{1}
	step := func() {
		if err := se.Embed(x, tok); err != nil {
			t.Fatal(err)
		}
		if err := se.Forward(x); err != nil {
			t.Fatal(err)
		}
		if err := se.Logits(logits, x); err != nil {
			t.Fatal(err)
		}
		tok[0] = argmax(logits)
	}
	step()
	if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
		t.Fatalf("a decode step allocates %v times", allocs)
	}
}
