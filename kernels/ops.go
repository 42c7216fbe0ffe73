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

// Attend implements Backend.Attend. Work is split over (query, KV head) pairs, so
// the query heads of one group share the keys and values while they are in cache
// (see attendChunk). Softmax is the numerically stable online form: exponents are
// taken relative to the running maximum, and probabilities are normalised once,
// after the weighted sum of values.
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

// attendChunk is how many cached positions the heads of a group take turns on: the
// chunk's keys and values (2·128·HeadDim floats) stay in L1/L2 while every head of
// the group passes over them, so the cache is read from memory once per group, not
// once per head.
const attendChunk = 128

func attendJob(j *job, lo, hi int, ws *workerScratch) {
	a := &j.attn
	g := a.Heads / a.KVHeads
	hd := a.HeadDim
	stride := a.KVHeads * hd
	k := j.kern
	ws.f32 = growF32(ws.f32, g*attendChunk+g*hd+2*g)
	for it := lo; it < hi; it++ {
		i, kvh := it/a.KVHeads, it%a.KVHeads
		npos := a.Pos0 + i + 1
		sc := ws.f32[:g*attendChunk]
		acc := ws.f32[g*attendChunk : g*attendChunk+g*hd]
		mx := ws.f32[g*attendChunk+g*hd : g*attendChunk+g*hd+g]
		sum := ws.f32[g*attendChunk+g*hd+g : g*attendChunk+g*hd+2*g]
		clear(acc)
		clear(sum)
		for h := range mx {
			mx[h] = float32(math.Inf(-1))
		}
		// Online softmax (as in FlashAttention): each chunk rescales what the
		// earlier ones accumulated when it raises a head's running maximum.
		for t0 := 0; t0 < npos; t0 += attendChunk {
			tn := min(attendChunk, npos-t0)
			keys := a.K[t0*stride+kvh*hd : (t0+tn-1)*stride+(kvh+1)*hd]
			vals := a.V[t0*stride+kvh*hd : (t0+tn-1)*stride+(kvh+1)*hd]
			for hh := range g {
				h := kvh*g + hh
				s := sc[hh*attendChunk : hh*attendChunk+tn]
				o := acc[hh*hd : (hh+1)*hd]
				m := max(mx[hh], k.dotRows(j.q[(i*a.Heads+h)*hd:(i*a.Heads+h+1)*hd], keys, stride, tn, s, a.Scale))
				if m > mx[hh] {
					f := expf(mx[hh] - m) // 0 for the first chunk
					sum[hh] *= f
					for d := range o {
						o[d] *= f
					}
					mx[hh] = m
				}
				sum[hh] += k.expSub(s, m)
				k.axpyRows(o, s, vals, stride)
			}
		}
		for hh := range g {
			h := kvh*g + hh
			inv := 1 / sum[hh]
			out := j.dst[(i*a.Heads+h)*hd : (i*a.Heads+h+1)*hd]
			for d, v := range acc[hh*hd : (hh+1)*hd] {
				out[d] = v * inv
			}
		}
	}
}

// SwiGLU implements Backend.SwiGLU.
func (c *cpu) SwiGLU(dst, gate, up []float32) {
	c.kern.swiglu(dst[:len(gate)], gate, up[:len(gate)])
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
