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

// Attend implements Backend.Attend. Softmax is the numerically stable online form
// (as in FlashAttention): exponents are taken relative to a running maximum, and
// probabilities are normalised once, after the weighted sum of values.
//
// With enough queries (prefill) the work is split over (query, KV head) pairs, and
// the query heads of a group share each chunk of keys and values while it is in
// cache (see attendChunk). With fewer queries than threads (decode) the cached
// positions are split instead (as flash-decoding does): each worker streams one
// contiguous stretch of the cache for all heads, and the partial softmax sums are
// merged at the end.
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
	j.kern = c.kern
	j.attn = a
	j.dst, j.q = dst, q
	j.grain = 1
	segs := 1
	if a.N < c.cfg.threads {
		segs = min(2*c.cfg.threads, (ctx+attendMinSegment-1)/attendMinSegment)
	}
	if segs <= 1 {
		j.fn = attendJob
		j.items = a.N * a.KVHeads
		c.pool.parallel(j, &s.ws)
		c.putScratch(s)
		return
	}
	j.fn = attendSegmentJob
	j.items = a.N * segs
	j.segs = segs
	s.part = growF32(s.part, a.N*segs*a.Heads*(a.HeadDim+2))
	j.part = s.part
	c.pool.parallel(j, &s.ws)
	mergeSegments(dst, s.part, &a, segs)
	c.putScratch(s)
}

// attendChunk is how many cached positions the heads of a group take turns on: the
// chunk's keys and values (2·128·HeadDim floats) stay in L1/L2 while every head of
// the group passes over them, so the cache is read from memory once per group, not
// once per head.
const attendChunk = 128

// attendMinSegment is the shortest stretch of positions worth a worker of its own
// in decode.
const attendMinSegment = 256

// attendRange runs the online softmax of the g query heads of KV head kvh (query
// i) over positions [t0, t1), leaving in acc (g×HeadDim), mx and sum (g each) the
// unnormalised weighted sum of values, the running maximum and the sum of
// exponentials.
func attendRange(k *kernelSet, a *Attention, q []float32, i, kvh, t0, t1 int, ws *workerScratch, acc, mx, sum []float32) {
	g := a.Heads / a.KVHeads
	hd := a.HeadDim
	stride := a.KVHeads * hd
	ws.f32 = growF32(ws.f32, g*attendChunk)
	sc := ws.f32[:g*attendChunk]
	clear(acc)
	clear(sum)
	for h := range mx {
		mx[h] = float32(math.Inf(-1))
	}
	for c0 := t0; c0 < t1; c0 += attendChunk {
		tn := min(attendChunk, t1-c0)
		keys := a.K[c0*stride+kvh*hd : (c0+tn-1)*stride+(kvh+1)*hd]
		vals := a.V[c0*stride+kvh*hd : (c0+tn-1)*stride+(kvh+1)*hd]
		for hh := range g {
			h := kvh*g + hh
			s := sc[hh*attendChunk : hh*attendChunk+tn]
			o := acc[hh*hd : (hh+1)*hd]
			m := max(mx[hh], k.dotRows(q[(i*a.Heads+h)*hd:(i*a.Heads+h+1)*hd], keys, stride, tn, s, a.Scale))
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
}

func attendJob(j *job, lo, hi int, ws *workerScratch) {
	a := &j.attn
	g := a.Heads / a.KVHeads
	hd := a.HeadDim
	ws.f32b = growF32(ws.f32b, g*hd+2*g)
	acc, mx, sum := ws.f32b[:g*hd], ws.f32b[g*hd:g*hd+g], ws.f32b[g*hd+g:g*hd+2*g]
	for it := lo; it < hi; it++ {
		i, kvh := it/a.KVHeads, it%a.KVHeads
		attendRange(j.kern, a, j.q, i, kvh, 0, a.Pos0+i+1, ws, acc, mx, sum)
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

// attendSegmentJob computes, for query i and segment sg of its positions, every
// head's partial result into j.part: HeadDim sums per (query, segment, head), then
// the maxima of all of them, then their sums of exponentials.
func attendSegmentJob(j *job, lo, hi int, ws *workerScratch) {
	a := &j.attn
	g := a.Heads / a.KVHeads
	hd := a.HeadDim
	for it := lo; it < hi; it++ {
		i, sg := it/j.segs, it%j.segs
		npos := a.Pos0 + i + 1
		seg := (npos + j.segs - 1) / j.segs
		t0, t1 := min(sg*seg, npos), min((sg+1)*seg, npos)
		total := a.N * j.segs * a.Heads
		st := j.part[total*hd:]
		base := (i*j.segs + sg) * a.Heads
		for kvh := range a.KVHeads {
			h0 := base + kvh*g
			acc := j.part[h0*hd : (h0+g)*hd]
			mx, sum := st[h0:h0+g], st[total+h0:total+h0+g]
			if t0 >= t1 {
				clear(acc)
				clear(sum)
				for h := range mx {
					mx[h] = float32(math.Inf(-1))
				}
				continue
			}
			attendRange(j.kern, a, j.q, i, kvh, t0, t1, ws, acc, mx, sum)
		}
	}
}

// mergeSegments combines the segments' partial softmax results: each is rescaled
// to the overall maximum before the sums and the weighted values add up.
func mergeSegments(dst, part []float32, a *Attention, segs int) {
	hd := a.HeadDim
	total := a.N * segs * a.Heads
	st := part[total*hd:]
	for i := range a.N {
		for h := range a.Heads {
			m := float32(math.Inf(-1))
			for sg := range segs {
				m = max(m, st[(i*segs+sg)*a.Heads+h])
			}
			out := dst[(i*a.Heads+h)*hd : (i*a.Heads+h+1)*hd]
			clear(out)
			var l float32
			for sg := range segs {
				p := (i*segs+sg)*a.Heads + h
				f := expf(st[p] - m) // 0 for an empty segment
				if f == 0 {
					continue
				}
				l += st[total+p] * f
				for d, v := range part[p*hd : (p+1)*hd] {
					out[d] += v * f
				}
			}
			inv := 1 / l
			for d := range out {
				out[d] *= inv
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
