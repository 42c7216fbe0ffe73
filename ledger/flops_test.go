package ledger

import (
	"errors"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// storiesConfig is the shape of stories260K (../shared/models/README.md): dim 64,
// 5 layers, 8 heads of 8, 4 KV heads, FFN 172, vocabulary 512.
func storiesConfig() model.Config {
	return model.Config{
		Arch: "llama", VocabSize: 512, Dim: 64, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		FFN: 172, ContextLength: 512, RopeBase: 10000, RopeDim: 8, NormEps: 1e-5,
	}
}

// manifestOf lays out a LLaMA model of c's shape, every matrix of type dt except
// those typeOf overrides; tied leaves out output.weight. Mixture-of-experts
// layers use the 3-D *_exps tensors, or the split ffn_*.E.weight ones.
func manifestOf(c model.Config, dt kernels.DType, typeOf map[string]kernels.DType, tied, split bool) *model.Manifest {
	mf := &model.Manifest{Config: c}
	add := func(name string, shape ...int64) {
		t := dt
		if len(shape) == 1 {
			t = kernels.F32
		}
		if o, ok := typeOf[name]; ok {
			t = o
		}
		mf.Tensors = append(mf.Tensors, model.TensorEntry{Name: name, Shape: shape, DType: t})
	}
	dim, q, kv, ffn := int64(c.Dim), int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim), int64(c.FFN)
	add("token_embd.weight", dim, int64(c.VocabSize))
	for i := range c.Layers {
		L := func(s string) string { return model.LayerTensor(i, s) }
		add(L("attn_norm.weight"), dim)
		add(L("attn_q.weight"), dim, q)
		add(L("attn_k.weight"), dim, kv)
		add(L("attn_v.weight"), dim, kv)
		add(L("attn_output.weight"), q, dim)
		add(L("ffn_norm.weight"), dim)
		switch {
		case c.Experts == 0:
			add(L("ffn_gate.weight"), dim, ffn)
			add(L("ffn_up.weight"), dim, ffn)
			add(L("ffn_down.weight"), ffn, dim)
		case split:
			add(L("ffn_gate_inp.weight"), dim, int64(c.Experts))
			for e := range c.Experts {
				add(L(fmt.Sprintf("ffn_gate.%d.weight", e)), dim, ffn)
				add(L(fmt.Sprintf("ffn_up.%d.weight", e)), dim, ffn)
				add(L(fmt.Sprintf("ffn_down.%d.weight", e)), ffn, dim)
			}
		default:
			add(L("ffn_gate_inp.weight"), dim, int64(c.Experts))
			add(L("ffn_gate_exps.weight"), dim, ffn, int64(c.Experts))
			add(L("ffn_up_exps.weight"), dim, ffn, int64(c.Experts))
			add(L("ffn_down_exps.weight"), ffn, dim, int64(c.Experts))
		}
	}
	add("output_norm.weight", dim)
	if !tied {
		add("output.weight", dim, int64(c.VocabSize))
	}
	return mf
}

func TestCostOf(t *testing.T) {
	moe := storiesConfig()
	moe.FFN, moe.Experts, moe.ExpertsUsed = 32, 4, 2
	for _, tc := range []struct {
		name    string
		mf      *model.Manifest
		weights uint64 // W_l, every layer alike
		head    uint64
	}{
		// q 64·64 + k 64·32 + v 64·32 + o 64·64 = 12288; gate, up, down 64·172 = 11008 each.
		{"stories260K shape", manifestOf(storiesConfig(), kernels.F32, nil, false, false), 12288 + 3*11008, 64 * 512},
		{"tied embeddings", manifestOf(storiesConfig(), kernels.F32, nil, true, false), 12288 + 3*11008, 64 * 512},
		// attention 12288 + router 64·4 + 2 of 4 experts of 3·64·32 = 12288 + 256 + 12288.
		{"mixture of experts", manifestOf(moe, kernels.F32, nil, false, false), 12288 + 256 + 12288, 64 * 512},
		{"split experts", manifestOf(moe, kernels.F32, nil, false, true), 12288 + 256 + 12288, 64 * 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CostOf(tc.mf)
			if err != nil {
				t.Fatal(err)
			}
			if c.Layers != 5 || c.QDim != 64 || c.Head.Weights != tc.head || len(c.PerLayer) != 5 {
				t.Fatalf("cost %+v", c)
			}
			for l, m := range c.PerLayer {
				if m.Weights != tc.weights {
					t.Errorf("layer %d: %d weights, want %d", l, m.Weights, tc.weights)
				}
			}
		})
	}
}

func TestCostOfRejects(t *testing.T) {
	extra := manifestOf(storiesConfig(), kernels.F32, nil, false, false)
	extra.Tensors = append(extra.Tensors, model.TensorEntry{Name: "blk.5.attn_q.weight", Shape: []int64{64, 64}})
	headless := manifestOf(storiesConfig(), kernels.F32, nil, true, false)
	headless.Tensors = headless.Tensors[1:] // no token_embd, no output
	uneven := storiesConfig()
	uneven.FFN, uneven.Experts, uneven.ExpertsUsed = 32, 4, 2
	unevenMF := manifestOf(uneven, kernels.F32, nil, false, false)
	for i, t := range unevenMF.Tensors {
		if t.Name == "blk.0.ffn_up_exps.weight" {
			unevenMF.Tensors[i].Shape = []int64{64, 32, 3}
		}
	}
	badConfig := manifestOf(storiesConfig(), kernels.F32, nil, false, false)
	badConfig.Config.Heads = 0
	badRow := manifestOf(storiesConfig(), kernels.Q4_0, nil, false, false) // 172 is not whole Q4_0 blocks
	for name, mf := range map[string]*model.Manifest{
		"layer beyond the model": extra, "no head": headless, "uneven experts": unevenMF,
		"bad config": badConfig, "partial blocks": badRow,
	} {
		if _, err := CostOf(mf); !errors.Is(err, ErrCost) {
			t.Errorf("%s: %v, want ErrCost", name, err)
		}
	}
}

// TestStories260K reads the reference model's manifest: the hand-computed shape
// above is the real one.
func TestStories260K(t *testing.T) {
	const path = "../../shared/models/stories260K.gguf"
	if _, err := os.Stat(path); err != nil {
		t.Skip("reference model not present:", err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mf, err := m.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	c, err := CostOf(mf)
	if err != nil {
		t.Fatal(err)
	}
	if c.PerLayer[0].Weights != 45312 || c.Head.Weights != 32768 || c.QDim != 64 || c.Layers != 5 {
		t.Fatalf("cost %+v", c)
	}
	// 5·2·45312 + 2·32768
	if got := FLOPsPerToken(c, 0, 5); got != 518656 {
		t.Errorf("FLOPs per token %d, want 518656", got)
	}
	if p, err := PrecisionOf(c, DefaultGenesis(), 0, 5); err != nil || p != 1000 {
		t.Errorf("precision %d, %v; want 1000 (f32)", p, err)
	}
}

func TestFLOPs(t *testing.T) {
	c, err := CostOf(manifestOf(storiesConfig(), kernels.F32, nil, false, false))
	if err != nil {
		t.Fatal(err)
	}
	const w = 45312 // W_l of every layer
	for _, tc := range []struct {
		name                string
		first, last         int
		from, to, results   uint32
		delivered, perToken uint64
	}{
		// 2·(5·45312)·10 + 4·5·64·(1+…+10 = 55) + 10·2·32768
		{"whole model prefill", 0, 5, 0, 10, 10, 2*5*w*10 + 4*5*64*55 + 10*2*32768, 5*2*w + 2*32768},
		// 2·(2·45312)·1 + 4·2·64·11
		{"first stage one decode step", 0, 2, 10, 11, 0, 2*2*w + 4*2*64*11, 2 * 2 * w},
		// 2·(3·45312)·4 + 4·3·64·(4+5+6+7) + 4·2·32768
		{"last stage four positions", 2, 5, 3, 7, 4, 2*3*w*4 + 4*3*64*22 + 4*2*32768, 3*2*w + 2*32768},
		{"last stage without results", 4, 5, 0, 1, 0, 2*w + 4*64, 2*w + 2*32768},
		{"empty layer range", 3, 3, 0, 5, 0, 0, 0},
		{"reversed layer range", 4, 3, 0, 5, 0, 0, 0},
		{"beyond the model", 4, 6, 0, 5, 0, 0, 0},
		{"negative first", -1, 2, 0, 5, 0, 0, 0},
		{"empty positions", 0, 5, 7, 7, 0, 0, 5*2*w + 2*32768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FLOPsDelivered(c, tc.first, tc.last, tc.from, tc.to, tc.results); got != tc.delivered {
				t.Errorf("FLOPsDelivered %d, want %d", got, tc.delivered)
			}
			if got := FLOPsPerToken(c, tc.first, tc.last); got != tc.perToken {
				t.Errorf("FLOPsPerToken %d, want %d", got, tc.perToken)
			}
		})
	}
	// The stages of a chain add up to the whole model.
	if a, b, d := FLOPsPerToken(c, 0, 2), FLOPsPerToken(c, 2, 4), FLOPsPerToken(c, 4, 5); a+b+d != FLOPsPerToken(c, 0, 5) {
		t.Errorf("stages %d+%d+%d != whole %d", a, b, d, FLOPsPerToken(c, 0, 5))
	}
	if a, b := FLOPsDelivered(c, 0, 3, 0, 9, 0), FLOPsDelivered(c, 3, 5, 0, 9, 9); a+b != FLOPsDelivered(c, 0, 5, 0, 9, 9) {
		t.Error("delivered FLOPs of two stages do not add up to the whole model's")
	}
}

func TestFLOPsSaturate(t *testing.T) {
	huge := Cost{Layers: 2, QDim: 1 << 26, PerLayer: []Matrices{{Weights: 1 << 40}, {Weights: 1 << 40}}, Head: Matrices{Weights: 1 << 40}}
	if got := FLOPsDelivered(huge, 0, 2, 0, math.MaxUint32, math.MaxUint32); got != math.MaxUint64 {
		t.Errorf("FLOPsDelivered %d, want saturation", got)
	}
	// Attention alone overflows: 4·1·2^26·Σ(p+1) for 2^32 positions.
	attn := Cost{Layers: 1, QDim: 1 << 26, PerLayer: []Matrices{{Weights: 1}}}
	if got := FLOPsDelivered(attn, 0, 1, 0, math.MaxUint32, 0); got != math.MaxUint64 {
		t.Errorf("attention FLOPs %d, want saturation", got)
	}
	max := Cost{Layers: 2, PerLayer: []Matrices{{Weights: math.MaxUint64}, {Weights: math.MaxUint64}}, Head: Matrices{Weights: math.MaxUint64}}
	if got := FLOPsPerToken(max, 0, 2); got != math.MaxUint64 {
		t.Errorf("FLOPsPerToken %d, want saturation", got)
	}
	// The last position's context, to(to+1)/2 at to = 2^32-1, is exact.
	one := Cost{Layers: 1, QDim: 1, PerLayer: []Matrices{{Weights: 0}}}
	const top = math.MaxUint32
	if got, want := FLOPsDelivered(one, 0, 1, top-1, top, 0), uint64(4*top); got != want {
		t.Errorf("last position %d, want %d", got, want)
	}
}

func TestEarnedSpent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"one TFLOP at 1.0", Earned(1e12, 1000, 1000), 1_000_000},
		{"floors", Earned(1_000_901_120, 1000, 1000), 1000},
		{"top tier, reliability 0.9", Earned(12_889_128_960, 8000, 900), 92_801},
		{"reliability 0", Earned(1e15, 8000, 0), 0},
		{"max FLOPs at the top tier", Earned(math.MaxUint64, 8000, 1000), 147_573_952_589_676},
		{"max everything", Earned(math.MaxUint64, math.MaxUint32, math.MaxUint32), math.MaxUint64},
		{"one GFLOP per token, 64 tokens at f16", Spent(1e9, 64, 500), 32_000},
		{"floors spend", Spent(518_656, 64, 1000), 33},
		{"no tokens", Spent(1e12, 0, 1000), 0},
		{"max per token", Spent(math.MaxUint64, 1, 1000), math.MaxUint64 / 1_000_000},
		{"max spend", Spent(math.MaxUint64, math.MaxUint32, 1000), math.MaxUint64},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestPrecision(t *testing.T) {
	g := DefaultGenesis()
	for dt, want := range map[kernels.DType]uint16{
		kernels.F32: 1000, kernels.F16: 500, kernels.BF16: 500,
		kernels.Q8_0: 250, kernels.Q6_K: 250, kernels.Q4_0: 125, kernels.Q4_K: 125,
	} {
		if got, err := PrecisionFactor(g, dt); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", dt, got, err, want)
		}
	}
	if _, err := PrecisionFactor(g, kernels.DType(99)); !errors.Is(err, ErrCost) {
		t.Errorf("unknown type: %v", err)
	}

	// Q4_0 matrices, attn_v in Q8_0, an f32 head. Per layer: Q4_0 holds
	// (45312-2048)/32·18 = 24336 bytes, Q8_0 2048/32·34 = 2176; the head 64·512·4 =
	// 131072, more than the five layers' Q4_0 (121680).
	cfg := storiesConfig()
	cfg.FFN = 192
	over := map[string]kernels.DType{"output.weight": kernels.F32}
	for i := range cfg.Layers {
		over[model.LayerTensor(i, "attn_v.weight")] = kernels.Q8_0
	}
	c, err := CostOf(manifestOf(cfg, kernels.Q4_0, over, false, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		first, last int
		want        uint16
	}{{0, 4, 125}, {4, 5, 1000}, {0, 5, 125}, {2, 5, 1000}} {
		if got, err := PrecisionOf(c, g, tc.first, tc.last); err != nil || got != tc.want {
			t.Errorf("[%d, %d): %d, %v; want %d", tc.first, tc.last, got, err, tc.want)
		}
	}
	// A tie goes to the lower factor.
	tie := Cost{Layers: 1, PerLayer: []Matrices{{Weights: 1, Bytes: []TypeBytes{{kernels.F32, 100}, {kernels.Q8_0, 100}}}}}
	if got, _ := PrecisionOf(tie, g, 0, 1); got != 250 {
		t.Errorf("tie: %d, want 250", got)
	}
	if _, err := PrecisionOf(c, g, 3, 7); !errors.Is(err, ErrRange) {
		t.Errorf("range beyond the model: %v", err)
	}
}
