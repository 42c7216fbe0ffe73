package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b float64, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa))
		w := 96
		x := randRow(r, 3*w, 2)
		g := randRow(r, w, 1)
		dst := make([]float32, len(x))
		b.RMSNorm(dst, x, g, 1e-5)
		for row := range 3 {
			var ss float64
			for _, v := range x[row*w : (row+1)*w] {
				ss += float64(v) * float64(v)
			}
			s := 1 / math.Sqrt(ss/float64(w)+1e-5)
			for i := range w {
				want := float64(x[row*w+i]) * s * float64(g[i])
				if !near(float64(dst[row*w+i]), want, 1e-5) {
					t.Fatalf("%s: row %d elem %d = %g, want %g", isa, row, i, dst[row*w+i], want)
				}
			}
		}
		b.RMSNorm(x, x, g, 1e-5) // in place
		for i := range x {
			if x[i] != dst[i] {
				t.Fatalf("%s: in-place RMSNorm differs at %d", isa, i)
			}
		}
	}
}

func TestRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	heads, hd, n, pos0 := 3, 16, 4, 7
	inv := make([]float32, 6) // partial rotation: 12 of 16 dims
	for j := range inv {
		inv[j] = float32(math.Pow(10000, -2*float64(j)/12))
	}
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa))
		for _, neox := range []bool{false, true} {
			x := randRow(r, n*heads*hd, 1)
			orig := append([]float32(nil), x...)
			b.RoPE(x, n, heads, hd, RoPE{Pos0: pos0, InvFreq: inv, Neox: neox})
			for i := range n {
				for h := range heads {
					o := orig[(i*heads+h)*hd : (i*heads+h+1)*hd]
					g := x[(i*heads+h)*hd : (i*heads+h+1)*hd]
					for j := range inv {
						a, c := 2*j, 2*j+1
						if neox {
							a, c = j, j+len(inv)
						}
						th := float64(pos0+i) * float64(inv[j])
						w0 := float64(o[a])*math.Cos(th) - float64(o[c])*math.Sin(th)
						w1 := float64(o[a])*math.Sin(th) + float64(o[c])*math.Cos(th)
						if !near(float64(g[a]), w0, 1e-5) || !near(float64(g[c]), w1, 1e-5) {
							t.Fatalf("%s neox=%v: row %d head %d pair %d = (%g,%g), want (%g,%g)", isa, neox, i, h, j, g[a], g[c], w0, w1)
						}
					}
					for d := 2 * len(inv); d < hd; d++ {
						if g[d] != o[d] {
							t.Fatalf("%s: dimension %d beyond the rotation changed", isa, d)
						}
					}
				}
			}
		}
	}
}

func TestAttend(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa), WithThreads(3))
		for _, tc := range []struct{ n, pos0, heads, kv, hd int }{
			{1, 0, 4, 2, 8}, {3, 5, 4, 2, 12}, {1, 40, 8, 2, 64}, {5, 3, 6, 3, 16}, {7, 0, 4, 4, 24}, {2, 300, 32, 4, 64}, {1, 1000, 7, 1, 16},
		} {
			ctx := tc.pos0 + tc.n
			a := Attention{N: tc.n, Pos0: tc.pos0, Heads: tc.heads, KVHeads: tc.kv, HeadDim: tc.hd,
				Scale: float32(1 / math.Sqrt(float64(tc.hd))),
				K:     randRow(r, ctx*tc.kv*tc.hd, 1), V: randRow(r, ctx*tc.kv*tc.hd, 1)}
			q := randRow(r, tc.n*tc.heads*tc.hd, 3)
			dst := make([]float32, len(q))
			b.Attend(dst, q, a)
			g := tc.heads / tc.kv
			for i := range tc.n {
				for h := range tc.heads {
					kvh := h / g
					qv := q[(i*tc.heads+h)*tc.hd:][:tc.hd]
					np := tc.pos0 + i + 1
					sc := make([]float64, np)
					mx := math.Inf(-1)
					for p := range np {
						kv := a.K[(p*tc.kv+kvh)*tc.hd:][:tc.hd]
						var s float64
						for d := range tc.hd {
							s += float64(qv[d]) * float64(kv[d])
						}
						sc[p] = s * float64(a.Scale)
						mx = max(mx, sc[p])
					}
					var sum float64
					for p := range sc {
						sc[p] = math.Exp(sc[p] - mx)
						sum += sc[p]
					}
					for d := range tc.hd {
						var want float64
						for p := range np {
							want += sc[p] / sum * float64(a.V[(p*tc.kv+kvh)*tc.hd+d])
						}
						if got := dst[(i*tc.heads+h)*tc.hd+d]; !near(float64(got), want, 2e-5) {
							t.Fatalf("%s %+v: q %d head %d dim %d = %g, want %g", isa, tc, i, h, d, got, want)
						}
					}
				}
			}
		}
	}
}

func TestSwiGLUAndAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa))
		gate := randRow(r, 1000, 4)
		gate[0], gate[1] = 100, -100
		up := randRow(r, 1000, 1)
		dst := make([]float32, 1000)
		b.SwiGLU(dst, gate, up)
		for i := range gate {
			g := float64(gate[i])
			want := g / (1 + math.Exp(-g)) * float64(up[i])
			if !near(float64(dst[i]), want, 1e-6) {
				t.Fatalf("%s: SwiGLU[%d] = %g, want %g", isa, i, dst[i], want)
			}
		}
		b.SwiGLU(gate, gate, up) // aliasing
		for i := range gate {
			if gate[i] != dst[i] {
				t.Fatalf("%s: aliased SwiGLU differs at %d", isa, i)
			}
		}
		acc := randRow(r, 3*40, 1)
		orig := append([]float32(nil), acc...)
		bias := randRow(r, 40, 1)
		b.Add(acc, bias)
		for i := range acc {
			if acc[i] != orig[i]+bias[i%40] {
				t.Fatalf("%s: Add broadcast wrong at %d", isa, i)
			}
		}
	}
}

func TestExpf(t *testing.T) {
	for x := float32(-104); x < 89; x += 0.0137 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if want > 1e-37 && want < math.MaxFloat32 && math.Abs(got-want) > 3e-7*want {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if !math.IsInf(float64(expf(100)), 1) || expf(-200) != 0 {
		t.Error("expf range ends wrong")
	}
}

func TestRows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	b := newTestCPU(t)
	for _, dt := range allTypes {
		data, w := randMatrix(t, r, dt, 10, 256)
		m, _ := b.NewMatrix(dt, 10, 256, data)
		dst := make([]float32, 2*256)
		b.Rows(dst, m, []int32{7, 2})
		for i := range 256 {
			if dst[i] != w[7*256+i] || dst[256+i] != w[2*256+i] {
				t.Fatalf("%s: Rows wrong at %d", dt, i)
			}
		}
	}
}

// A decode step must not allocate: the engine calls these ~300 times per token.
func TestDecodeDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, isa := range isaNames() {
		b := newTestCPU(t, WithISA(isa), WithThreads(2))
		ms := map[DType]Matrix{}
		for _, dt := range allTypes {
			data, _ := randMatrix(t, r, dt, 64, 512)
			ms[dt], _ = b.NewMatrix(dt, 64, 512, data)
		}
		x := randRow(r, 512, 1)
		y := make([]float32, 64)
		gain := randRow(r, 512, 1)
		inv := []float32{1, 0.5, 0.25, 0.125}
		// A context long enough for the decode path that splits positions.
		a := Attention{N: 1, Pos0: 600, Heads: 8, KVHeads: 2, HeadDim: 64, Scale: 0.125,
			K: randRow(r, 601*2*64, 1), V: randRow(r, 601*2*64, 1)}
		q := randRow(r, 8*64, 1)
		att := make([]float32, 8*64)
		emb := make([]float32, 512)
		ids := []int32{3}
		step := func() {
			for _, m := range ms {
				b.MatMul(y, x, 1, m)
			}
			b.RMSNorm(x, x, gain, 1e-5)
			b.RoPE(q, 1, 8, 64, RoPE{Pos0: 100, InvFreq: inv})
			b.Attend(att, q, a)
			b.SwiGLU(y, y, y)
			b.Add(x, gain)
			b.Rows(emb, ms[Q8_0], ids)
		}
		step()
		if n := testing.AllocsPerRun(50, step); n != 0 {
			t.Errorf("%s: %v allocations per decode step", isa, n)
		}
	}
}
