package llama

import (
	"math"
	"sort"
	"testing"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// refModel is a deliberately plain transformer, written the way llama2.c's run.c
// reads: one token at a time, float64 accumulators, every weight dequantized up
// front, no shared code with the engine beyond dequantization. It is the independent
// implementation the engine's output is checked against.
type refModel struct {
	c         model.Config
	embd, out [][]float64
	outNorm   []float64
	layers    []refLayer
	k, v      [][][]float64 // layer, pos, kvDim
	invFreq   []float64
}

type refLayer struct {
	attnNorm, ffnNorm []float64
	q, k, v, o        [][]float64
	bq, bk, bv        []float64
	gate, up, down    [][]float64
	router            [][]float64
	experts           [][3][][]float64 // gate, up, down
}

func refMatrix(t *testing.T, m *model.Model, name string, lo, hi int) [][]float64 {
	t.Helper()
	tn, ok := m.Tensor(name)
	if !ok {
		t.Fatalf("missing %s", name)
	}
	cols := tn.Cols()
	if hi < 0 {
		hi = tn.Rows()
	}
	rowBytes := len(tn.Data) / tn.Rows()
	out := make([][]float64, hi-lo)
	buf := make([]float32, cols)
	for r := lo; r < hi; r++ {
		if err := kernels.Dequantize(buf, tn.DType, tn.Data[r*rowBytes:(r+1)*rowBytes]); err != nil {
			t.Fatal(err)
		}
		row := make([]float64, cols)
		for i, x := range buf {
			row[i] = float64(x)
		}
		out[r-lo] = row
	}
	return out
}

func refVector(t *testing.T, m *model.Model, name string) []float64 {
	if _, ok := m.Tensor(name); !ok {
		return nil
	}
	return refMatrix(t, m, name, 0, -1)[0]
}

func newRef(t *testing.T, m *model.Model) *refModel {
	c := m.Config
	r := &refModel{c: c}
	r.embd = refMatrix(t, m, "token_embd.weight", 0, -1)
	r.outNorm = refVector(t, m, "output_norm.weight")
	if _, ok := m.Tensor("output.weight"); ok {
		r.out = refMatrix(t, m, "output.weight", 0, -1)
	} else {
		r.out = r.embd
	}
	for i := 0; i < c.Layers; i++ {
		n := func(s string) string { return model.LayerTensor(i, s) }
		l := refLayer{
			attnNorm: refVector(t, m, n("attn_norm.weight")),
			ffnNorm:  refVector(t, m, n("ffn_norm.weight")),
			q:        refMatrix(t, m, n("attn_q.weight"), 0, -1),
			k:        refMatrix(t, m, n("attn_k.weight"), 0, -1),
			v:        refMatrix(t, m, n("attn_v.weight"), 0, -1),
			o:        refMatrix(t, m, n("attn_output.weight"), 0, -1),
			bq:       refVector(t, m, n("attn_q.bias")),
			bk:       refVector(t, m, n("attn_k.bias")),
			bv:       refVector(t, m, n("attn_v.bias")),
		}
		if c.Experts == 0 {
			l.gate = refMatrix(t, m, n("ffn_gate.weight"), 0, -1)
			l.up = refMatrix(t, m, n("ffn_up.weight"), 0, -1)
			l.down = refMatrix(t, m, n("ffn_down.weight"), 0, -1)
		} else {
			l.router = refMatrix(t, m, n("ffn_gate_inp.weight"), 0, -1)
			for e := 0; e < c.Experts; e++ {
				l.experts = append(l.experts, [3][][]float64{
					refMatrix(t, m, n("ffn_gate_exps.weight"), e*c.FFN, (e+1)*c.FFN),
					refMatrix(t, m, n("ffn_up_exps.weight"), e*c.FFN, (e+1)*c.FFN),
					refMatrix(t, m, n("ffn_down_exps.weight"), e*c.Dim, (e+1)*c.Dim),
				})
			}
		}
		r.layers = append(r.layers, l)
	}
	r.k = make([][][]float64, c.Layers)
	r.v = make([][][]float64, c.Layers)
	for j := 0; j < c.RopeDim/2; j++ {
		r.invFreq = append(r.invFreq, math.Pow(float64(c.RopeBase), -float64(2*j)/float64(c.RopeDim)))
	}
	return r
}

func matvec(w [][]float64, x []float64) []float64 {
	out := make([]float64, len(w))
	for r, row := range w {
		var s float64
		for i, a := range row {
			s += a * x[i]
		}
		out[r] = s
	}
	return out
}

func rmsnorm(x, g []float64, eps float64) []float64 {
	var ss float64
	for _, a := range x {
		ss += a * a
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] * s * g[i]
	}
	return out
}

func addTo(x, b []float64) {
	for i := range b {
		x[i] += b[i]
	}
}

func (r *refModel) rope(v []float64, heads, pos int) {
	c := r.c
	for h := 0; h < heads; h++ {
		head := v[h*c.HeadDim : (h+1)*c.HeadDim]
		for j, f := range r.invFreq {
			a, b := 2*j, 2*j+1
			if c.RopeNeox {
				a, b = j, j+c.RopeDim/2
			}
			s, co := math.Sincos(float64(pos) * f)
			x0, x1 := head[a], head[b]
			head[a], head[b] = x0*co-x1*s, x0*s+x1*co
		}
	}
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func (r *refModel) ffn(gate, up, down [][]float64, x []float64) []float64 {
	g, u := matvec(gate, x), matvec(up, x)
	for i := range g {
		g[i] = silu(g[i]) * u[i]
	}
	return matvec(down, g)
}

// step runs one token at position pos and returns its logits.
func (r *refModel) step(tok int32, pos int) []float64 {
	c := r.c
	x := append([]float64(nil), r.embd[tok]...)
	group := c.Heads / c.KVHeads
	for li, l := range r.layers {
		xb := rmsnorm(x, l.attnNorm, float64(c.NormEps))
		q, k, v := matvec(l.q, xb), matvec(l.k, xb), matvec(l.v, xb)
		if l.bq != nil {
			addTo(q, l.bq)
			addTo(k, l.bk)
			addTo(v, l.bv)
		}
		r.rope(q, c.Heads, pos)
		r.rope(k, c.KVHeads, pos)
		r.k[li] = append(r.k[li], k)
		r.v[li] = append(r.v[li], v)
		att := make([]float64, c.Heads*c.HeadDim)
		for h := 0; h < c.Heads; h++ {
			kvh := h / group
			qh := q[h*c.HeadDim : (h+1)*c.HeadDim]
			scores := make([]float64, pos+1)
			mx := math.Inf(-1)
			for p := 0; p <= pos; p++ {
				kh := r.k[li][p][kvh*c.HeadDim : (kvh+1)*c.HeadDim]
				var s float64
				for i := range qh {
					s += qh[i] * kh[i]
				}
				scores[p] = s / math.Sqrt(float64(c.HeadDim))
				mx = math.Max(mx, scores[p])
			}
			var sum float64
			for p := range scores {
				scores[p] = math.Exp(scores[p] - mx)
				sum += scores[p]
			}
			for p := range scores {
				vh := r.v[li][p][kvh*c.HeadDim : (kvh+1)*c.HeadDim]
				for i := range vh {
					att[h*c.HeadDim+i] += scores[p] / sum * vh[i]
				}
			}
		}
		addTo(x, matvec(l.o, att))
		xb = rmsnorm(x, l.ffnNorm, float64(c.NormEps))
		if c.Experts == 0 {
			addTo(x, r.ffn(l.gate, l.up, l.down, xb))
			continue
		}
		// Mixture of experts, the obvious way: softmax over all experts, sort,
		// keep the top ExpertsUsed, renormalise, sum their weighted outputs.
		logits := matvec(l.router, xb)
		type pe struct {
			e int
			p float64
		}
		var ps []pe
		mx := math.Inf(-1)
		for _, z := range logits {
			mx = math.Max(mx, z)
		}
		var sum float64
		for e, z := range logits {
			ps = append(ps, pe{e, math.Exp(z - mx)})
			sum += math.Exp(z - mx)
		}
		for i := range ps {
			ps[i].p /= sum
		}
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].p > ps[j].p })
		ps = ps[:c.ExpertsUsed]
		var kept float64
		for _, x := range ps {
			kept += x.p
		}
		for _, sel := range ps {
			ex := l.experts[sel.e]
			y := r.ffn(ex[0], ex[1], ex[2], xb)
			for i := range y {
				x[i] += sel.p / kept * y[i]
			}
		}
	}
	return matvec(r.out, rmsnorm(x, r.outNorm, float64(c.NormEps)))
}

func argmax64(v []float64) int32 {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return int32(best)
}

// compareLogits fails unless got and want agree to within tol relative to the
// spread of want, and pick the same greedy token.
func compareLogits(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	var maxAbs, maxDiff float64
	for i := range want {
		maxAbs = math.Max(maxAbs, math.Abs(want[i]))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-want[i]))
	}
	if maxDiff > tol*maxAbs || math.IsNaN(maxDiff) {
		t.Fatalf("%s: logits differ by %g (max |logit| %g, tolerance %g)", what, maxDiff, maxAbs, tol)
	}
	g := make([]float64, len(got))
	for i := range got {
		g[i] = float64(got[i])
	}
	if a, b := argmax64(g), argmax64(want); a != b {
		t.Fatalf("%s: greedy token %d, reference %d", what, a, b)
	}
}
