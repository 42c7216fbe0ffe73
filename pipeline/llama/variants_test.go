package llama

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

func synth(t *testing.T, o model.SynthOptions) *model.Model {
	t.Helper()
	var buf bytes.Buffer
	if err := model.Synthesize(&buf, o); err != nil {
		t.Fatal(err)
	}
	m, err := model.FromGGUF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkAgainstReference runs a prompt and greedy decoding through the engine and
// through the plain reference, comparing logits at every step.
func checkAgainstReference(t *testing.T, m *model.Model, tol float64) {
	t.Helper()
	st, err := NewStage(m, cpu(t))
	if err != nil {
		t.Fatal(err)
	}
	prompt := randomPrompt(rand.New(rand.NewPCG(9, 9)), m.Config.VocabSize, 7)
	const steps = 12
	got := chain(t, []*Stage{st}, prompt, steps)
	ref := newRef(t, m)
	var want []float64
	for i, tok := range prompt {
		want = ref.step(tok, i)
	}
	for step := 0; step <= steps; step++ {
		compareLogits(t, fmt.Sprintf("step %d", step), got[step], want, tol)
		want = ref.step(argmax64(want), len(prompt)+step)
	}
}

// TestMixtureOfExpertsMatchesReference routes tokens through a synthesized Mixtral-
// style model (8 experts, top-2) and compares with the reference, which computes
// the routing the obvious way (full softmax, sort, renormalise).
func TestMixtureOfExpertsMatchesReference(t *testing.T) {
	m := synth(t, model.SynthOptions{
		Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 96, Vocab: 300,
		DType: kernels.F32, Seed: 11, Experts: 8, ExpertsUsed: 2,
	})
	checkAgainstReference(t, m, 1e-4)
	// And the batched prefill groups rows by expert: it must agree too.
	st, _ := NewStage(m, cpu(t))
	prompt := randomPrompt(rand.New(rand.NewPCG(1, 1)), 300, 40)
	batched := chain(t, []*Stage{st}, prompt, 0)[0]
	ref := newRef(t, m)
	var want []float64
	for i, tok := range prompt {
		want = ref.step(tok, i)
	}
	compareLogits(t, "batched MoE prefill", batched, want, 1e-4)
}

// TestQuantizedMatchesReference runs each quantized weight type through the engine;
// the reference dequantizes the same blocks, so the remaining difference is the
// integer kernels' quantization of activations.
func TestQuantizedMatchesReference(t *testing.T) {
	for _, dt := range []kernels.DType{kernels.F16, kernels.Q8_0, kernels.Q4_0} {
		t.Run(dt.String(), func(t *testing.T) {
			m := synth(t, model.SynthOptions{
				Dim: 128, Layers: 2, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, DType: dt, Seed: 5,
			})
			tol := 1e-4
			if dt != kernels.F16 {
				tol = 3e-2 // Q8_0 activations: llama.cpp's own error budget
			}
			checkAgainstReference(t, m, tol)
		})
	}
}

// TestQwen2Variant turns a synthesized model into a Qwen2 one (attention biases,
// NEOX rotary pairing, a larger rope base) and compares with the reference.
func TestQwen2Variant(t *testing.T) {
	base := synth(t, model.SynthOptions{Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 96, Vocab: 300, DType: kernels.F32, Seed: 3})
	md := model.NewMetadata()
	for _, kv := range base.Meta.All() {
		k := kv.Key
		if rest, ok := strings.CutPrefix(k, "llama."); ok {
			k = "qwen2." + rest
		}
		md.Set(k, kv.Value)
	}
	md.Set("general.architecture", "qwen2")
	md.Set("qwen2.rope.freq_base", float32(1e6))
	var srcs []model.TensorSource
	r := rand.New(rand.NewPCG(4, 4))
	bias := func(name string, n int) model.TensorSource {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(r.NormFloat64()*0.5)))
		}
		return model.SourceOf(model.Tensor{Name: name, Shape: []int64{int64(n)}, DType: kernels.F32, Data: b})
	}
	for _, tn := range base.Tensors {
		srcs = append(srcs, model.SourceOf(tn))
		for _, p := range []struct {
			w, b string
			n    int
		}{{"attn_q.weight", "attn_q.bias", 64}, {"attn_k.weight", "attn_k.bias", 32}, {"attn_v.weight", "attn_v.bias", 32}} {
			if strings.HasSuffix(tn.Name, "."+p.w) {
				srcs = append(srcs, bias(strings.TrimSuffix(tn.Name, p.w)+p.b, p.n))
			}
		}
	}
	var buf bytes.Buffer
	if err := model.WriteGGUF(&buf, md, srcs...); err != nil {
		t.Fatal(err)
	}
	m, err := model.FromGGUF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Config.RopeNeox || m.Config.RopeBase != 1e6 {
		t.Fatalf("qwen2 config not read: %+v", m.Config)
	}
	if _, ok := m.Tensor("blk.1.attn_k.bias"); !ok {
		t.Fatal("bias tensors not written")
	}
	checkAgainstReference(t, m, 1e-4)
}

// TestRopeScaling checks the frequency table for linear and Llama 3 scaling against
// values computed by hand from the formulas.
func TestRopeScaling(t *testing.T) {
	base := model.Config{RopeDim: 8, RopeBase: 10000}
	m := &model.Model{}
	freq := func(c model.Config) []float32 {
		f, err := ropeFrequencies(c, m)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	plain := freq(base)
	// base^(-2j/8): 1, 0.1, 0.01, 0.001
	for j, want := range []float64{1, 0.1, 0.01, 0.001} {
		if math.Abs(float64(plain[j])-want) > 1e-7*math.Max(1, want) {
			t.Errorf("plain freq[%d] = %v, want %v", j, plain[j], want)
		}
	}
	lin := base
	lin.RopeScaling = model.RopeScaling{Type: "linear", Factor: 4}
	for j, f := range freq(lin) {
		if math.Abs(float64(f*4-plain[j])) > 1e-7 {
			t.Errorf("linear freq[%d] = %v, want %v/4", j, f, plain[j])
		}
	}
	// Llama 3 with original context 8192, factors 1 and 4: wavelengths below
	// 2048 keep their frequency, above 8192 are divided by the factor 8, between
	// are interpolated. Wavelengths here: 2π, 62.8, 628, 6283 → the last is
	// interpolated with smooth = (8192/6283 - 1)/3.
	l3 := base
	l3.RopeScaling = model.RopeScaling{Type: "llama3", Factor: 8, OrigContext: 8192, LowFreqFactor: 1, HighFreqFactor: 4}
	got := freq(l3)
	for j := 0; j < 3; j++ {
		if got[j] != plain[j] {
			t.Errorf("llama3 freq[%d] = %v, want unchanged %v", j, got[j], plain[j])
		}
	}
	wl := 2 * math.Pi / 0.001
	smooth := (8192/wl - 1) / 3
	want := (1-smooth)*0.001/8 + smooth*0.001
	if math.Abs(float64(got[3])-want) > 1e-9 {
		t.Errorf("llama3 freq[3] = %v, want %v", got[3], want)
	}
}
