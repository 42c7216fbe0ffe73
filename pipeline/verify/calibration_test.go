package verify_test

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// The calibration of doc.go: honest recomputation of a hop (another instruction
// set, another batching, f16 transport) against what a stage sent, and the same
// comparison for a stage that cheats. -calibrate prints the whole table.
var calibrate = flag.Bool("calibrate", false, "print the tolerance calibration table")

// backends are the CPU kernel sets that round differently: pure Go, AVX2, AVX-512.
var backends = struct {
	once sync.Once
	set  map[string]kernels.Backend
}{}

func backend(t testing.TB, isa string) kernels.Backend {
	backends.once.Do(func() {
		backends.set = map[string]kernels.Backend{}
		for _, name := range []string{"generic", "avx2", "avx512"} {
			be, err := kernels.NewCPU(kernels.WithISA(name), kernels.WithThreads(2))
			if err == nil {
				backends.set[name] = be
			}
		}
	})
	be, ok := backends.set[isa]
	if !ok {
		t.Skipf("instruction set %s not available here", isa)
	}
	return be
}

func stories(t testing.TB) *model.Model {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func synth(t testing.TB, dt kernels.DType, seed uint64, dim, layers int) *model.Model {
	var buf bytes.Buffer
	err := model.Synthesize(&buf, model.SynthOptions{
		Dim: dim, Layers: layers, Heads: 8, KVHeads: 4, FFN: 2 * dim, Vocab: 320, DType: dt, Seed: seed,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromGGUF(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hop is one audited hop: layers [first, last) of a model, the stage computing
// them (on its backend, perhaps with other weights or corrupting its output) and
// the auditor recomputing them on another backend.
type hop struct {
	m           *model.Model
	first, last int
	stageISA    string
	auditISA    string
	f16         bool         // activations travel as f16
	weights     *model.Model // the stage's weights when it cheats on them
	corrupt     func([]float32, int)
	prefill     int // rows of the first Forward; the rest go one by one
	positions   int
}

type outcome struct {
	hidden, logits verify.Score
	scores         []verify.Score // every position's score, of whichever kind
}

// judge is the verdict of an audit of every position.
func (o outcome) judge(kind string) verify.Judgement {
	tl := verify.Tally{Logits: kind == "logits"}
	for i, s := range o.scores {
		tl.Add(uint32(i), s)
	}
	return tl.Judge()
}

// run plays the hop as the mesh would and scores every position: the worst
// hidden-state and logits scores.
func (h hop) run(t testing.TB, seed uint64) outcome {
	t.Helper()
	c := h.m.Config
	d := c.Dim
	r := rand.New(rand.NewPCG(seed, 7))
	tokens := make([]int32, h.positions)
	for i := range tokens {
		tokens[i] = int32(r.IntN(c.VocabSize))
	}
	round := func(x []float32) {
		if h.f16 {
			for i, v := range x {
				x[i] = kernels.F16ToF32(kernels.F32ToF16(v))
			}
		}
	}
	// The rows the hop receives: embeddings for the first hop, else the output
	// of an honest upstream stage, as they arrive.
	batches := [][2]int{{0, h.prefill}}
	for p := h.prefill; p < h.positions; p++ {
		batches = append(batches, [2]int{p, p + 1})
	}
	in := make([]float32, h.positions*d)
	var up *llama.Session
	if h.first > 0 {
		st := newStage(t, h.m, backend(t, "avx512"), 0, h.first)
		up = newSession(t, st, h.positions)
	}
	emb := newSession(t, newStage(t, h.m, backend(t, "avx512"), 0, max(h.first, 1)), h.positions)
	for _, b := range batches {
		x := in[b[0]*d : b[1]*d]
		if err := emb.Embed(x, tokens[b[0]:b[1]]); err != nil {
			t.Fatal(err)
		}
		if up != nil {
			if err := up.Forward(x); err != nil {
				t.Fatal(err)
			}
			round(x)
		}
	}
	// The stage, batch by batch, as it served the session; its output is what
	// the next stage received.
	weights := h.m
	if h.weights != nil {
		weights = h.weights
	}
	stage := newSession(t, newStage(t, weights, backend(t, h.stageISA), h.first, h.last), h.positions)
	sent := append([]float32(nil), in...)
	last := h.last == c.Layers
	var sentLogits []verify.Logits
	for _, b := range batches {
		x := sent[b[0]*d : b[1]*d]
		if err := stage.Forward(x); err != nil {
			t.Fatal(err)
		}
		if h.corrupt != nil {
			h.corrupt(x, b[0])
		}
		if last {
			sentLogits = append(sentLogits, topLogits(t, stage, x[len(x)-d:]))
		} else {
			round(x)
		}
	}
	// The auditor, in one batch over the same inputs.
	audit := newSession(t, newStage(t, h.m, backend(t, h.auditISA), h.first, h.last), h.positions)
	redo := append([]float32(nil), in...)
	if err := audit.Forward(redo); err != nil {
		t.Fatal(err)
	}
	var o outcome
	if last {
		for i, b := range batches {
			p := b[1] - 1
			sc := verify.CompareLogits(topLogits(t, audit, redo[p*d:(p+1)*d]), sentLogits[i])
			o.scores = append(o.scores, sc)
			if sc.Value > o.logits.Value {
				o.logits = sc
			}
		}
		return o
	}
	pr, err := verify.NewPrinter(seed, d)
	if err != nil {
		t.Fatal(err)
	}
	q := 0.0
	if h.f16 {
		q = verify.QuantumF16
	}
	for p := 0; p < h.positions; p++ {
		row := func(x []float32) []float32 { return x[p*d : (p+1)*d] }
		a, err := pr.Hidden(row(redo), row(in))
		if err != nil {
			t.Fatal(err)
		}
		b, err := pr.Hidden(row(sent), row(in))
		if err != nil {
			t.Fatal(err)
		}
		sc := verify.CompareHidden(a, b, q)
		o.scores = append(o.scores, sc)
		if sc.Value > o.hidden.Value {
			o.hidden = sc
		}
	}
	return o
}

func topLogits(t testing.TB, se *llama.Session, row []float32) verify.Logits {
	logits := make([]float32, se.Stage().Config().VocabSize)
	if err := se.Logits(logits, row); err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	var l verify.Logits
	for _, i := range idx[:verify.TopK] {
		l.IDs = append(l.IDs, int32(i))
		l.Vals = append(l.Vals, logits[i])
	}
	return l
}

// stageCache holds stages by model, backend and range. Its keys hold the model
// pointer, so its values hold the model too: a collected model's address could
// come back as another's.
var stageCache sync.Map // key → cachedStage

type cachedStage struct {
	m  *model.Model
	st *llama.Stage
}

func newStage(t testing.TB, m *model.Model, be kernels.Backend, first, last int) *llama.Stage {
	key := fmt.Sprintf("%p/%s/%d/%d", m, be.Name(), first, last)
	if st, ok := stageCache.Load(key); ok {
		return st.(cachedStage).st
	}
	st, err := llama.NewStage(m, be, llama.WithLayers(first, last))
	if err != nil {
		t.Fatal(err)
	}
	stageCache.Store(key, cachedStage{m, st})
	return st
}

func newSession(t testing.TB, st *llama.Stage, n int) *llama.Session {
	se, err := st.NewSession(n)
	if err != nil {
		t.Fatal(err)
	}
	return se
}

// subject is a model under test and the cheaper weights a stage of it may load
// instead.
type subject struct {
	name string
	m    *model.Model
	// cheaper is the model re-quantized below its claimed precision; nil when
	// nothing cheaper is on hand.
	cheaper *model.Model
	// positions and prefill shape the sessions audited.
	positions, prefill int
}

func newSubject(t testing.TB, name string, m *model.Model, cheaper kernels.DType) subject {
	s := subject{name: name, m: m, positions: 40, prefill: 12}
	if cheaper != 0 {
		c, err := pipeline.Requantize(m, cheaper)
		if err != nil {
			t.Fatal(err)
		}
		s.cheaper = c
	}
	return s
}

// subjects are the models calibrated: stories260K as shipped (f32) and in f16,
// and synthesized models in every weight type the network serves. full adds
// the slower ones: q4_0 weights and a deeper, wider q8_0 model over longer
// sessions, where honest quantized rounding differences grow the most.
func subjects(t testing.TB, full bool) []subject {
	s := stories(t)
	out := []subject{newSubject(t, "stories260K f32", s, kernels.Q4_0)}
	out = append(out, newSubject(t, "synthetic q8_0", synth(t, kernels.Q8_0, 3, 256, 4), kernels.Q4_0))
	if !full {
		return out
	}
	s16, err := pipeline.Requantize(s, kernels.F16)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out,
		newSubject(t, "stories260K f16", s16, kernels.Q4_0),
		newSubject(t, "synthetic f32", synth(t, kernels.F32, 1, 256, 4), kernels.Q4_0),
		newSubject(t, "synthetic f16", synth(t, kernels.F16, 2, 256, 4), kernels.Q4_0),
		newSubject(t, "synthetic q4_0", synth(t, kernels.Q4_0, 4, 256, 4), 0),
	)
	deep := newSubject(t, "synthetic q8_0 deep", synth(t, kernels.Q8_0, 9, 512, 12), kernels.Q4_0)
	deep.positions, deep.prefill = 200, 50
	return append(out, deep)
}

// ranges are the hops audited in a model: first, middle and last, of one layer
// or several, and the whole model.
func ranges(layers int) [][2]int {
	return [][2]int{{0, 1}, {0, 2}, {1, layers - 1}, {2, layers}, {layers - 1, layers}, {0, layers}}
}

// TestCalibration: across models, weight types, instruction sets, batching and
// transport, every honest recomputation of a hop passes and every faulty stage
// fails, with the scores doc.go reports. -calibrate runs every model and prints
// every score.
func TestCalibration(t *testing.T) {
	if testing.Short() && !*calibrate {
		t.Skip("calibration runs hundreds of hops")
	}
	isaPairs := [][2]string{{"avx512", "generic"}, {"generic", "avx512"}}
	seeds := uint64(2)
	if *calibrate {
		isaPairs = append(isaPairs, [2]string{"avx2", "avx512"}, [2]string{"avx512", "avx512"})
		seeds = 3
	}
	type stat struct{ worst, median float64 }
	honest := map[string]*stat{} // by model and kind: the largest
	faulty := map[string]*stat{} // by model, kind and fault: the smallest
	var lines []string
	for _, sub := range subjects(t, *calibrate) {
		layers := sub.m.Config.Layers
		for _, rg := range ranges(layers) {
			kind := "hidden"
			if rg[1] == layers {
				kind = "logits"
			}
			for _, f16 := range []bool{false, true} {
				for seed := uint64(1); seed <= seeds; seed++ {
					base := hop{m: sub.m, first: rg[0], last: rg[1], f16: f16, prefill: sub.prefill, positions: sub.positions}
					for _, pair := range isaPairs {
						h := base
						h.stageISA, h.auditISA = pair[0], pair[1]
						o := h.run(t, seed)
						j := o.judge(kind)
						key := sub.name + " " + kind
						st := honest[key]
						if st == nil {
							st = &stat{}
							honest[key] = st
						}
						st.worst, st.median = max(st.worst, j.Worst.Value), max(st.median, j.Median)
						lines = append(lines, fmt.Sprintf("honest %-20s %v f16=%-5v %s/%s seed %d: %s worst %.3g (%s) median %.3g", sub.name, rg, f16, pair[0], pair[1], seed, kind, j.Worst.Value, j.Worst.Part, j.Median))
						if j.Verdict != verify.Pass {
							t.Errorf("honest %s %v f16=%v %s/%s seed %d: %s fails at %d: worst %.3g median %.3g", sub.name, rg, f16, pair[0], pair[1], seed, kind, j.Position, j.Worst.Value, j.Median)
						}
					}
					faults := map[string]hop{}
					h := base
					h.stageISA, h.auditISA = "avx512", "generic"
					if sub.cheaper != nil {
						q := h
						q.weights = sub.cheaper
						faults["q4_0 weights"] = q
					}
					sk := h
					skipped, err := pipeline.SkipLayer(sub.m, rg[1]-1)
					if err != nil {
						t.Fatal(err)
					}
					sk.weights = skipped
					faults["skipped layer"] = sk
					rnd := h
					rnd.corrupt = pipeline.RandomActivations(seed, sub.m.Config.Dim)
					faults["random"] = rnd
					for name, fh := range faults {
						o := fh.run(t, seed)
						j := o.judge(kind)
						key := sub.name + " " + kind + " " + name
						st := faulty[key]
						if st == nil {
							st = &stat{worst: math.Inf(1), median: math.Inf(1)}
							faulty[key] = st
						}
						st.worst, st.median = min(st.worst, j.Worst.Value), min(st.median, j.Median)
						lines = append(lines, fmt.Sprintf("FAULT  %-20s %v f16=%-5v %-13s seed %d: %s worst %.3g (%s) median %.3g", sub.name, rg, f16, name, seed, kind, j.Worst.Value, j.Worst.Part, j.Median))
						if j.Verdict != verify.Fail {
							t.Errorf("%s %s %v f16=%v seed %d: %s passes: worst %.3g median %.3g", name, sub.name, rg, f16, seed, kind, j.Worst.Value, j.Median)
						}
					}
				}
			}
		}
	}
	if *calibrate {
		t.Log("\n" + strings.Join(lines, "\n"))
	}
	report := func(what string, m map[string]*stat) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("%s %-42s worst %.3g median %.3g", what, k, m[k].worst, m[k].median)
		}
	}
	report("largest honest", honest)
	report("smallest faulty", faulty)
}
