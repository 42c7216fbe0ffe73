package kernels

import (
	"fmt"
	"math"
)

// Rows implements Backend.Rows: the embedding lookup, one dequantized row per id.
func (c *cpu) Rows(dst []float32, w Matrix, ids []int32) {
	m, ok := w.(*cpuMatrix)
	if !ok {
		panic(fmt.Sprintf("kernels: Rows of a %T, not a CPU matrix", w))
	}
	for i, id := range ids {
		if id < 0 || int(id) >= m.rows {
			panic(fmt.Sprintf("kernels: row id %d out of range [0, %d)", id, m.rows))
		}
		dequantizeUnchecked(dst[i*m.cols:(i+1)*m.cols], m.dt, m.data[int(id)*m.rowBytes:(int(id)+1)*m.rowBytes])
	}
}

// RMSNorm implements Backend.RMSNorm. The sum of squares accumulates in float64,
// as ggml's does, so long rows lose nothing to cancellation.
func (c *cpu) RMSNorm(dst, x, gain []float32, eps float32) {
	w := len(gain)
	if w == 0 || len(x)%w != 0 || len(dst) < len(x) {
		panic(fmt.Sprintf("kernels: RMSNorm of %d values with %d gains into %d", len(x), w, len(dst)))
	}
	for r := 0; r < len(x)/w; r++ {
		xs := x[r*w : (r+1)*w]
		ds := dst[r*w : (r+1)*w]
		var ss float64
		for _, v := range xs {
			ss += float64(v) * float64(v)
		}
		scale := float32(1 / math.Sqrt(ss/float64(w)+float64(eps)))
		for i, v := range xs {
			ds[i] = v * scale * gain[i]
		}
	}
}

// RoPE implements Backend.RoPE. The angles of a row are shared by all its heads,
// so their sines and cosines are computed once per row.
func (c *cpu) RoPE(x []float32, n, heads, headDim int, r RoPE) {
	half := len(r.InvFreq)
	if 2*half > headDim || len(x) < n*heads*headDim {
		panic(fmt.Sprintf("kernels: RoPE of %d pairs on head size %d, %d values for %d×%d×%d", half, headDim, len(x), n, heads, headDim))
	}
	s := c.getScratch()
	s.trig = growF32(s.trig, 2*half)
	cs, sn := s.trig[:half], s.trig[half:]
	for i := range n {
		pos := float32(r.Pos0 + i)
		for j, f := range r.InvFreq {
			si, co := math.Sincos(float64(pos * f))
			cs[j], sn[j] = float32(co), float32(si)
		}
		row := x[i*heads*headDim : (i+1)*heads*headDim]
		for h := range heads {
			v := row[h*headDim : (h+1)*headDim]
			if r.Neox {
				a, b := v[:half], v[half:2*half]
				for j := range half {
					x0, x1 := a[j], b[j]
					a[j] = x0*cs[j] - x1*sn[j]
					b[j] = x0*sn[j] + x1*cs[j]
				}
			} else {
				for j := range half {
					x0, x1 := v[2*j], v[2*j+1]
					v[2*j] = x0*cs[j] - x1*sn[j]
					v[2*j+1] = x0*sn[j] + x1*cs[j]
				}
			}
		}
	}
	c.putScratch(s)
}

// Attend implements Backend.Attend. Work is split over (query, KV head) pairs: the
// query heads of one group read each cached key and value once between them, which
// is what long contexts are bound by. Softmax subtracts the row maximum first.
func (c *cpu) Attend(dst, q []float32, a Attention) {
	if a.N <= 0 {
		return
	}
	if a.KVHeads <= 0 || a.Heads%a.KVHeads != 0 || a.HeadDim <= 0 {
		panic(fmt.Sprintf("kernels: Attend with %d heads over %d KV heads of size %d", a.Heads, a.KVHeads, a.HeadDim))
	}
	ctx := a.Pos0 + a.N
	kv := ctx * a.KVHeads * a.HeadDim
	qn := a.N * a.Heads * a.HeadDim
	if len(a.K) < kv || len(a.V) < kv || len(q) < qn || len(dst) < qn {
		panic(fmt.Sprintf("kernels: Attend over %d positions: K %d, V %d, q %d, dst %d values", ctx, len(a.K), len(a.V), len(q), len(dst)))
	}
	s := c.getScratch()
	j := &s.job
	j.fn = attendJob
	j.kern = c.kern
	j.attn = a
	j.dst, j.q = dst, q
	j.items = a.N * a.KVHeads
	j.grain = 1
	c.pool.parallel(j, &s.ws)
	c.putScratch(s)
}

func attendJob(j *job, lo, hi int, ws *workerScratch) {
	a := &j.attn
	g := a.Heads / a.KVHeads
	hd := a.HeadDim
	k := j.kern
	for it := lo; it < hi; it++ {
		i, kvh := it/a.KVHeads, it%a.KVHeads
		npos := a.Pos0 + i + 1
		ws.f32 = growF32(ws.f32, g*npos)
		// Scores of the whole group, position by position, so each key is read once.
		for t := range npos {
			kv := a.K[(t*a.KVHeads+kvh)*hd : (t*a.KVHeads+kvh+1)*hd]
			for hh := range g {
				h := kvh*g + hh
				ws.f32[hh*npos+t] = k.dotF32(j.q[(i*a.Heads+h)*hd:(i*a.Heads+h+1)*hd], kv) * a.Scale
			}
		}
		for hh := range g {
			sc := ws.f32[hh*npos : (hh+1)*npos]
			mx := float32(math.Inf(-1))
			for _, v := range sc {
				mx = max(mx, v)
			}
			var sum float32
			for t, v := range sc {
				e := expf(v - mx)
				sc[t] = e
				sum += e
			}
			inv := 1 / sum
			for t := range sc {
				sc[t] *= inv
			}
			h := kvh*g + hh
			clear(j.dst[(i*a.Heads+h)*hd : (i*a.Heads+h+1)*hd])
		}
		for t := range npos {
			vv := a.V[(t*a.KVHeads+kvh)*hd : (t*a.KVHeads+kvh+1)*hd]
			for hh := range g {
				h := kvh*g + hh
				k.axpy(j.dst[(i*a.Heads+h)*hd:(i*a.Heads+h+1)*hd], ws.f32[hh*npos+t], vv)
			}
		}
	}
}

// SwiGLU implements Backend.SwiGLU.
func (c *cpu) SwiGLU(dst, gate, up []float32) {
	up = up[:len(gate)]
	dst = dst[:len(gate)]
	for i, g := range gate {
		dst[i] = silu(g) * up[i]
	}
}

// Add implements Backend.Add.
func (c *cpu) Add(dst, x []float32) {
	if len(x) == 0 || len(dst)%len(x) != 0 {
		panic(fmt.Sprintf("kernels: Add of %d values to %d", len(x), len(dst)))
	}
	for o := 0; o < len(dst); o += len(x) {
		d := dst[o : o+len(x)]
		for i, v := range x {
			d[i] += v
		}
	}
}
