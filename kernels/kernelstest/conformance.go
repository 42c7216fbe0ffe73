package kernelstest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// StoriesReference is stories260K's greedy continuation of StoriesPrompt in
// StoriesTokens tokens (../shared/models/README.md): the text every backend
// must reproduce exactly.
const (
	StoriesPrompt    = "Once upon a time"
	StoriesTokens    = 124
	StoriesReference = `, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find`
)

// Tolerances are the bounds Conformance holds a backend to (doc.go explains
// each measure). The zero value is not useful: start from DefaultTolerances.
type Tolerances struct {
	MatMulFloat, MatMulQuant    float64
	Rows, RMSNorm, RoPE, Attend float64
	SwiGLU, Add                 float64
}

// DefaultTolerances are the documented bounds of doc.go.
func DefaultTolerances() Tolerances {
	return Tolerances{
		MatMulFloat: 2e-6, MatMulQuant: 1e-2,
		Rows: 1e-6, RMSNorm: 2e-6, RoPE: 2e-6, Attend: 2e-5, SwiGLU: 1e-6, Add: 0,
	}
}

type config struct {
	tol     Tolerances
	stories bool
}

// Option adjusts Conformance.
type Option func(*config)

// WithTolerances replaces the default bounds: for a backend whose arithmetic is
// documented to differ more (half-precision accumulation, say), never to make
// a failing backend pass.
func WithTolerances(t Tolerances) Option { return func(c *config) { c.tol = t } }

// WithoutStories skips the end-to-end text check, for a backend under
// construction that does not yet run whole models.
func WithoutStories() Option { return func(c *config) { c.stories = false } }

// Conformance runs the suite against be as subtests. be stays open; the
// caller closes it.
func Conformance(t *testing.T, be kernels.Backend, opts ...Option) {
	t.Helper()
	cfg := config{tol: DefaultTolerances(), stories: true}
	for _, o := range opts {
		o(&cfg)
	}
	t.Logf("backend %s", be.Name())
	t.Run("MatMul", func(t *testing.T) { testMatMul(t, be, cfg.tol) })
	t.Run("Rows", func(t *testing.T) { testRows(t, be, cfg.tol) })
	t.Run("RMSNorm", func(t *testing.T) { testRMSNorm(t, be, cfg.tol) })
	t.Run("RoPE", func(t *testing.T) { testRoPE(t, be, cfg.tol) })
	t.Run("Attend", func(t *testing.T) { testAttend(t, be, cfg.tol) })
	t.Run("SwiGLU", func(t *testing.T) { testSwiGLU(t, be, cfg.tol) })
	t.Run("Add", func(t *testing.T) { testAdd(t, be, cfg.tol) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, be) })
	if cfg.stories {
		t.Run("Stories", func(t *testing.T) { testStories(t, be) })
	}
}

// worst tracks the largest error of a check and reports the first violation.
type worst struct {
	t    *testing.T
	what string
	tol  float64
	max  float64
	bad  int
}

func (w *worst) check(i int, got, ref, scale float64) {
	e := math.Abs(got-ref) / scale
	if math.IsNaN(got) || math.IsInf(got, 0) {
		e = math.Inf(1)
	}
	if e > w.tol {
		if w.bad == 0 {
			w.t.Errorf("%s [%d]: got %.9g, reference %.9g: error %.3g > %.3g", w.what, i, got, ref, e, w.tol)
		}
		w.bad++
	}
	w.max = max(w.max, e)
}

func (w *worst) done() {
	if w.bad > 1 {
		w.t.Errorf("%s: %d values out of tolerance", w.what, w.bad)
	}
	w.t.Logf("%-40s worst error %.3g (bound %.3g)", w.what, w.max, w.tol)
}

func normals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// weights encodes rows×cols normal values as dt and returns the bytes and
// their decoded values, the reference's weights.
func weights(t *testing.T, r *rand.Rand, dt kernels.DType, rows, cols int) ([]byte, []float32) {
	t.Helper()
	src := normals(r, rows*cols)
	rb, err := dt.RowBytes(int64(rows * cols))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, rb)
	if err := kernels.Quantize(data, dt, src); err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, rows*cols)
	if err := kernels.Dequantize(dec, dt, data); err != nil {
		t.Fatal(err)
	}
	return data, dec
}

func allTypes() []kernels.DType {
	return []kernels.DType{kernels.F32, kernels.F16, kernels.BF16, kernels.Q8_0, kernels.Q4_0, kernels.Q4_K, kernels.Q6_K}
}

// widths are the column counts tried for dt: odd ones where the type allows,
// one block and several otherwise.
func widths(dt kernels.DType) []int {
	switch dt.BlockSize() {
	case 1:
		return []int{1, 33, 100, 257}
	case 32:
		return []int{32, 96, 288}
	default:
		return []int{256, 768}
	}
}

func testMatMul(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, dt := range allTypes() {
		bound := tol.MatMulFloat
		if dt.BlockSize() > 1 {
			bound = tol.MatMulQuant
		}
		w := worst{t: t, what: "MatMul " + dt.String(), tol: bound}
		for _, cols := range widths(dt) {
			// 1 and 3 tokens are decode and a small batch; 17 and 40 straddle
			// a 16-token tile.
			for _, s := range []struct{ rows, n int }{{1, 1}, {7, 1}, {37, 3}, {65, 17}, {19, 40}} {
				data, wf := weights(t, r, dt, s.rows, cols)
				m, err := be.NewMatrix(dt, s.rows, cols, data)
				if err != nil {
					t.Fatalf("%s %d×%d: %v", dt, s.rows, cols, err)
				}
				x := normals(r, s.n*cols)
				dst := make([]float32, s.n*s.rows+1)
				dst[len(dst)-1] = 42 // past the end: must stay
				be.MatMul(dst, x, s.n, m)
				if dst[len(dst)-1] != 42 {
					t.Errorf("%s %d×%d n=%d wrote past the result", dt, s.rows, cols, s.n)
				}
				for i := range s.n {
					for o := range s.rows {
						var ref, mag float64
						for c := range cols {
							p := float64(x[i*cols+c]) * float64(wf[o*cols+c])
							ref += p
							mag += math.Abs(p)
						}
						w.check(i*s.rows+o, float64(dst[i*s.rows+o]), ref, max(mag, 1e-30))
					}
				}
			}
		}
		w.done()
	}
}

func testRows(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, dt := range allTypes() {
		w := worst{t: t, what: "Rows " + dt.String(), tol: tol.Rows}
		cols := widths(dt)[len(widths(dt))-1]
		const rows = 11
		data, wf := weights(t, r, dt, rows, cols)
		m, err := be.NewMatrix(dt, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, ids := range [][]int32{{0}, {rows - 1, 3, 3, 0, 7}} {
			dst := make([]float32, len(ids)*cols)
			be.Rows(dst, m, ids)
			for i, id := range ids {
				for c := range cols {
					ref := float64(wf[int(id)*cols+c])
					w.check(i*cols+c, float64(dst[i*cols+c]), ref, max(1, math.Abs(ref)))
				}
			}
		}
		w.done()
	}
}

func testRMSNorm(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(3, 3))
	w := worst{t: t, what: "RMSNorm", tol: tol.RMSNorm}
	for _, s := range []struct{ rows, width int }{{1, 1}, {1, 77}, {3, 288}, {5, 1000}} {
		x, gain := normals(r, s.rows*s.width), normals(r, s.width)
		for i := range x {
			x[i] *= 10 // the residual stream is not unit-scaled
		}
		ref := make([]float64, len(x))
		for i := range s.rows {
			var ss float64
			for _, v := range x[i*s.width : (i+1)*s.width] {
				ss += float64(v) * float64(v)
			}
			k := 1 / math.Sqrt(ss/float64(s.width)+1e-5)
			for c := range s.width {
				ref[i*s.width+c] = float64(x[i*s.width+c]) * k * float64(gain[c])
			}
		}
		dst := append([]float32(nil), x...) // dst aliases x
		be.RMSNorm(dst, dst, gain, 1e-5)
		for i := range ref {
			w.check(i, float64(dst[i]), ref[i], max(1, math.Abs(ref[i])))
		}
	}
	w.done()
}

func testRoPE(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, neox := range []bool{false, true} {
		w := worst{t: t, what: fmt.Sprintf("RoPE neox=%v", neox), tol: tol.RoPE}
		// pairs < headDim/2 rotates only part of each head (partial RoPE).
		for _, s := range []struct{ n, heads, headDim, pairs, pos0 int }{
			{1, 1, 2, 1, 0}, {1, 4, 16, 8, 5}, {3, 5, 12, 6, 4000}, {7, 2, 16, 4, 123}, {1, 8, 64, 32, 8191},
		} {
			inv := make([]float32, s.pairs)
			for j := range inv {
				inv[j] = float32(math.Pow(10000, -2*float64(j)/float64(2*s.pairs)))
			}
			x := normals(r, s.n*s.heads*s.headDim)
			ref := make([]float64, len(x))
			for i := range ref {
				ref[i] = float64(x[i])
			}
			for i := range s.n {
				for h := range s.heads {
					v := ref[(i*s.heads+h)*s.headDim:]
					for j, f := range inv {
						a := float64(float32(s.pos0+i) * f) // the angle as a float32, as documented
						i0, i1 := 2*j, 2*j+1
						if neox {
							i0, i1 = j, j+s.pairs
						}
						x0, x1 := v[i0], v[i1]
						v[i0] = x0*math.Cos(a) - x1*math.Sin(a)
						v[i1] = x0*math.Sin(a) + x1*math.Cos(a)
					}
				}
			}
			be.RoPE(x, s.n, s.heads, s.headDim, kernels.RoPE{Pos0: s.pos0, InvFreq: inv, Neox: neox})
			// Large angles: float32 sin/cos may be a few ulps of the angle off.
			scale := 1 + float64(s.pos0+s.n)/8
			for i := range ref {
				w.check(i, float64(x[i]), ref[i], scale*max(1, math.Abs(ref[i])))
			}
		}
		w.done()
	}
}

func testAttend(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(5, 5))
	w := worst{t: t, what: "Attend", tol: tol.Attend}
	for _, s := range []struct{ n, pos0, heads, kvHeads, headDim int }{
		{1, 0, 1, 1, 8},     // the first token
		{1, 700, 8, 2, 64},  // decode deep into the cache, GQA 4
		{5, 3, 6, 3, 17},    // a small batch, odd head size, GQA 2
		{33, 0, 4, 4, 32},   // prefill from the start
		{2, 2047, 6, 2, 48}, // GQA 3 at 2k positions
		{40, 100, 3, 1, 16}, // prefill after a prefix, one KV head
	} {
		ctx := s.pos0 + s.n
		q := normals(r, s.n*s.heads*s.headDim)
		k, v := normals(r, ctx*s.kvHeads*s.headDim), normals(r, ctx*s.kvHeads*s.headDim)
		scale := float32(1 / math.Sqrt(float64(s.headDim)))
		dst := make([]float32, len(q))
		be.Attend(dst, q, kernels.Attention{N: s.n, Pos0: s.pos0, Heads: s.heads, KVHeads: s.kvHeads,
			HeadDim: s.headDim, Scale: scale, K: k, V: v})
		g := s.heads / s.kvHeads
		hd := s.headDim
		for i := range s.n {
			for h := range s.heads {
				kvh := h / g
				npos := s.pos0 + i + 1
				sc := make([]float64, npos)
				m := math.Inf(-1)
				for p := range npos {
					var d float64
					for c := range hd {
						d += float64(q[(i*s.heads+h)*hd+c]) * float64(k[(p*s.kvHeads+kvh)*hd+c])
					}
					sc[p] = d * float64(scale)
					m = max(m, sc[p])
				}
				var l float64
				for p := range sc {
					sc[p] = math.Exp(sc[p] - m)
					l += sc[p]
				}
				for c := range hd {
					var ref float64
					for p := range npos {
						ref += sc[p] * float64(v[(p*s.kvHeads+kvh)*hd+c])
					}
					ref /= l
					o := (i*s.heads+h)*hd + c
					w.check(o, float64(dst[o]), ref, max(1, math.Abs(ref)))
				}
			}
		}
	}
	w.done()
}

func testSwiGLU(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(6, 6))
	w := worst{t: t, what: "SwiGLU", tol: tol.SwiGLU}
	for _, n := range []int{1, 7, 1001} {
		gate, up := normals(r, n), normals(r, n)
		for i := range gate {
			gate[i] *= 4 // silu's tails
		}
		ref := make([]float64, n)
		for i := range ref {
			g := float64(gate[i])
			ref[i] = g / (1 + math.Exp(-g)) * float64(up[i])
		}
		be.SwiGLU(gate, gate, up) // dst aliases gate
		for i := range ref {
			w.check(i, float64(gate[i]), ref[i], max(1, math.Abs(ref[i])))
		}
	}
	w.done()
}

func testAdd(t *testing.T, be kernels.Backend, tol Tolerances) {
	r := rand.New(rand.NewPCG(7, 7))
	w := worst{t: t, what: "Add", tol: tol.Add}
	for _, s := range []struct{ dst, x int }{{1, 1}, {50, 50}, {4 * 77, 77}} {
		dst, x := normals(r, s.dst), normals(r, s.x)
		ref := make([]float64, s.dst)
		for i := range ref {
			ref[i] = float64(dst[i] + x[i%s.x]) // one float32 addition
		}
		be.Add(dst, x)
		for i := range ref {
			w.check(i, float64(dst[i]), ref[i], max(1, math.Abs(ref[i])))
		}
	}
	w.done()
}

// testConcurrent: sessions call a backend from several goroutines at once;
// each must get its own answer.
func testConcurrent(t *testing.T, be kernels.Backend) {
	r := rand.New(rand.NewPCG(8, 8))
	const rows, cols, workers, rounds = 33, 64, 4, 20
	data, _ := weights(t, r, kernels.F32, rows, cols)
	m, err := be.NewMatrix(kernels.F32, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	xs := make([][]float32, workers)
	want := make([][]float32, workers)
	for i := range xs {
		xs[i] = normals(r, cols)
		want[i] = make([]float32, rows)
		be.MatMul(want[i], xs[i], 1, m)
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]float32, rows)
			for range rounds {
				be.MatMul(got, xs[i], 1, m)
				for o := range got {
					if got[o] != want[i][o] {
						errs <- fmt.Sprintf("worker %d: row %d: %v, alone %v", i, o, got[o], want[i][o])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// testStories: the embedded model, greedy, gives the reference text exactly.
func testStories(t *testing.T, be kernels.Backend) {
	text, err := Stories(be)
	if err != nil {
		t.Fatal(err)
	}
	if text != StoriesReference {
		t.Fatalf("stories260K on %s:\n%q\nwant\n%q", be.Name(), text, StoriesReference)
	}
}

// Stories runs stories260K greedily on be from StoriesPrompt for
// StoriesTokens tokens and returns the continuation: what the suite checks,
// and what benchmarks time.
func Stories(be kernels.Backend) (string, error) {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		return "", err
	}
	defer m.Close()
	st, err := llama.NewStage(m, be)
	if err != nil {
		return "", err
	}
	tok, err := pipeline.TokenizerFor(m)
	if err != nil {
		return "", err
	}
	var text strings.Builder
	open := func(_ context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(st, maxLen) }
	_, err = pipeline.Generate(context.Background(), open, tok, pipeline.Request{
		Prompt: StoriesPrompt, MaxTokens: StoriesTokens,
		OnText: func(s string) error { text.WriteString(s); return nil },
	})
	return text.String(), err
}

// Bytes is v's memory, for building F32 matrices from float slices.
func Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}
