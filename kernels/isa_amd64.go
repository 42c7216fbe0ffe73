//go:build amd64

package kernels

import "github.com/klauspost/cpuid/v2"

// CPU features, detected once. AVX2 paths also need FMA and F16C (VCVTPH2PS); the
// AVX-512 path uses VNNI's VPDPBUSD on 256-bit registers (AVX512VL) for decode and on
// 512-bit ones for prefill.
var (
	hasAVX2   = cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3, cpuid.F16C)
	hasAVX512 = hasAVX2 && cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512VL, cpuid.AVX512VNNI)
)

//go:noescape
func q8_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q8_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q4_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func q4_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

//go:noescape
func gemmQ8_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ8_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

//go:noescape
func q4KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)

//go:noescape
func q6KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)

//go:noescape
func quantQ8AVX2(x *float32, nb int, qs *int8, d *float32, sum *int32)

//go:noescape
func dotRowsAVX2(q *float32, k *float32, kstride, n, hd int, out *float32, scale float32) float32

//go:noescape
func axpyRowsAVX2(out *float32, p *float32, v *float32, vstride, n, hd int)

//go:noescape
func expSubAVX2(x *float32, n int, m float32) float32

//go:noescape
func f16ToF32AVX2(dst *float32, src *byte, n int)

//go:noescape
func dotBF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func f32DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func f16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func bf16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)

//go:noescape
func gemmF32x512(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF32x512Add(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF16x512(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmF16x512Add(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

//go:noescape
func gemmQ4KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ4KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ6KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func gemmQ6KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

//go:noescape
func maxMinAVX2(x *float32, n int) (mx, mn float32)

//go:noescape
func quantQ8KAVX2(x *float32, n int, iscale float32, qs *int8)

//go:noescape
func dotF32AVX2(a, b *float32, n int) float32

//go:noescape
func dotF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func axpyAVX2(y *float32, a float32, x *float32, n int)

//go:noescape
func triadAVX2(a, b, c *float32, s float32, n int)

// availableKernels lists the instruction sets usable here, best last.
func availableKernels() []*kernelSet {
	sets := []*kernelSet{genericKernels()}
	if hasAVX2 {
		k := sets[0].clone("avx2")
		k.quantQ8 = quantQ8Asm
		k.quantQ8K = quantQ8KAsm
		k.dotF32 = dotF32Asm
		k.axpy = axpyAsm
		k.widenF16 = widenF16Asm
		k.dotRows = dotRowsAsm
		k.axpyRows = axpyRowsAsm
		k.expSub = expSubAsm
		k.tiles[F32] = tileFloatX4(f32DotX4AVX2, tileF32Asm)
		k.tiles[F16] = tileFloatX4(f16DotX4AVX2, tileF16Asm)
		k.tiles[BF16] = tileFloatX4(bf16DotX4AVX2, tileBF16Asm)
		k.tiles[Q8_0] = tileX4(q8_0DotX4AVX2, q8_0Len)
		k.tiles[Q4_0] = tileX4(q4_0DotX4AVX2, q4_0Len)
		k.tiles[Q4_K] = tileKX4(q4KDotX4AVX2)
		k.tiles[Q6_K] = tileKX4(q6KDotX4AVX2)
		sets = append(sets, k)
	}
	if hasAVX512 {
		k := sets[len(sets)-1].clone("avx512-vnni")
		k.tiles[Q8_0] = tileGemm(gemmQ8_0VNNI, gemmQ8_0VNNIAdd, q8_0Len, tileX4(q8_0DotX4VNNI, q8_0Len))
		k.tiles[Q4_0] = tileGemm(gemmQ4_0VNNI, gemmQ4_0VNNIAdd, q4_0Len, tileX4(q4_0DotX4VNNI, q4_0Len))
		k.tiles[F32] = tileGemmFloat(gemmF32x512, gemmF32x512Add, 4, k.tiles[F32])
		k.tiles[F16] = tileGemmFloat(gemmF16x512, gemmF16x512Add, 2, k.tiles[F16])
		k.tiles[Q4_K] = tileGemmK(gemmQ4KVNNI, gemmQ4KVNNIAdd, Q4_K, k.tiles[Q4_K])
		k.tiles[Q6_K] = tileGemmK(gemmQ6KVNNI, gemmQ6KVNNIAdd, Q6_K, k.tiles[Q6_K])
		k.gemmLayout[Q4_K] = true
		k.gemmLayout[Q6_K] = true
		k.gemmLayout[Q8_0] = true
		k.gemmLayout[Q4_0] = true
		sets = append(sets, k)
	}
	return sets
}

func triad(a, b, c []float32, s float32) {
	if hasAVX2 && len(a) >= 32 {
		n := len(a) &^ 31
		triadAVX2(&a[0], &b[0], &c[0], s, n)
		triadGo(a[n:], b[n:], c[n:], s)
		return
	}
	triadGo(a, b, c, s)
}

func dotF32Asm(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	_ = b[len(a)-1]
	return dotF32AVX2(&a[0], &b[0], len(a))
}

func axpyAsm(y []float32, a float32, x []float32) {
	if len(y) == 0 {
		return
	}
	_ = x[len(y)-1]
	axpyAVX2(&y[0], a, &x[0], len(y))
}

type x4Kernel func(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)

// tileX4 runs a four-row kernel over rows [r0, r1) for each token. The four rows of
// a call are a quarter of the range apart, so each core streams four distant
// regions of the matrix at once (one sequential stream per core reaches only about
// half of the memory bandwidth); a remainder row is run as four copies of itself.
func tileX4(kern x4Kernel, blockBytes int) tileFunc {
	return func(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
		nb := m.cols / qk
		var tmp [4]float32
		q := (r1 - r0) / 4
		if q > 0 {
			_ = m.w[(r0+4*q)*m.rowBytes-1]
			for t := t0; t < t1; t++ {
				_ = m.dst[t*m.rows+r0+4*q-1]
			}
		}
		for i := range q {
			r := r0 + i
			w := &m.w[r*m.rowBytes]
			for t := t0; t < t1; t++ {
				kern(w, q*m.rowBytes, nb, &m.q8.qs[t*m.cols], &m.q8.d[t*nb], &m.q8.sum[t*nb], &m.dst[t*m.rows+r], q)
			}
		}
		for r := r0 + 4*q; r < r1; r++ {
			w := &m.w[r*m.rowBytes]
			_ = m.w[(r+1)*m.rowBytes-1]
			for t := t0; t < t1; t++ {
				kern(w, 0, nb, &m.q8.qs[t*m.cols], &m.q8.d[t*nb], &m.q8.sum[t*nb], &tmp[0], 1)
				m.dst[t*m.rows+r] = tmp[0]
			}
		}
	}
}

func tileF32Asm(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
	for r := r0; r < r1; r++ {
		wr := bytesAsF32(m.w[r*m.rowBytes : (r+1)*m.rowBytes])
		if wr == nil {
			ws.f32 = growF32(ws.f32, m.cols)
			dequantizeUnchecked(ws.f32, F32, m.w[r*m.rowBytes:(r+1)*m.rowBytes])
			wr = ws.f32
		}
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotF32Asm(wr, m.x[t*m.cols:(t+1)*m.cols])
		}
	}
}

// tileF16Asm converts on the fly for one token; for several it widens the row once.
func tileF16Asm(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
	for r := r0; r < r1; r++ {
		wb := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		if t1-t0 == 1 {
			x := m.x[t0*m.cols : (t0+1)*m.cols]
			m.dst[t0*m.rows+r] = dotF16AVX2(&wb[0], &x[0], m.cols)
			continue
		}
		ws.f32 = growF32(ws.f32, m.cols)
		widenF16Asm(ws.f32, wb)
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotF32Asm(ws.f32, m.x[t*m.cols:(t+1)*m.cols])
		}
	}
}

type gemmKernel func(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

// gemmKBlocks is how many 32-value blocks of k one pass of the prefill tile covers:
// the activations of 2048 columns of 128 tokens, in the tile's expanded layout,
// are about 800 KB and stay in L2 while every row group of the chunk meets them.
const gemmKBlocks = 64

// tileGemm runs the 4-row × 8-token prefill kernel over rows [r0, r1), k split in
// chunks of gemmKBlocks blocks (the first stores, the others add): each group of
// four weight rows stays in L1 while every token tile passes it. Decode calls (no
// gemm layout) and the rows left over go to the matrix-vector kernel.
func tileGemm(set, add gemmKernel, blockBytes int, matvec tileFunc) tileFunc {
	return func(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
		g := m.g
		if g == nil || t0 != 0 || t1 != m.n {
			matvec(m, r0, r1, t0, t1, ws)
			return
		}
		nb := m.cols / qk
		kstride := g.pairs * 64
		r4 := r0 + (r1-r0)/4*4
		if r4 > r0 {
			_ = m.w[r4*m.rowBytes-1]
			_ = m.dst[(m.n-1)*m.rows+r4-1]
		}
		for k0 := 0; k0 < nb; k0 += gemmKBlocks {
			kn := min(gemmKBlocks, nb-k0)
			kern := set
			if k0 > 0 {
				kern = add
			}
			for r := r0; r < r4; r += 4 {
				w := &m.w[r*m.rowBytes+k0*blockBytes]
				for p := 0; p < g.pairs; p += gemmPairsPerTile {
					t := 2 * p
					if t >= m.n {
						break
					}
					o := k0*g.pairs + p
					kern(w, m.rowBytes, kn, &g.acts[o*64], &g.sa[o*16], &g.corr[o*16], kstride,
						&m.dst[t*m.rows+r], 4*m.rows, min(8, m.n-t))
				}
			}
		}
		if r4 < r1 {
			matvec(m, r4, r1, t0, t1, ws)
		}
	}
}

func quantQ8Asm(a *q8Act, b0 int, x []float32) {
	nb := len(x) / qk
	if nb == 0 {
		return
	}
	_ = a.qs[(b0+nb)*qk-1]
	_ = a.d[b0+nb-1]
	_ = a.sum[b0+nb-1]
	quantQ8AVX2(&x[0], nb, &a.qs[b0*qk], &a.d[b0], &a.sum[b0])
}

type kx4Kernel func(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)

// tileKX4 is tileX4 for the K-quants, whose activations are Q8_K blocks.
func tileKX4(kern kx4Kernel) tileFunc {
	return func(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
		nb := m.cols / qkK
		var tmp [4]float32
		q := (r1 - r0) / 4
		if q > 0 {
			_ = m.w[(r0+4*q)*m.rowBytes-1]
			for t := t0; t < t1; t++ {
				_ = m.dst[t*m.rows+r0+4*q-1]
			}
		}
		a := m.q8k
		for i := range q {
			r := r0 + i
			w := &m.w[r*m.rowBytes]
			for t := t0; t < t1; t++ {
				kern(w, q*m.rowBytes, nb, &a.qs[t*m.cols], &a.d[t*nb], &a.bsums[t*nb*16], &m.dst[t*m.rows+r], q)
			}
		}
		for r := r0 + 4*q; r < r1; r++ {
			w := &m.w[r*m.rowBytes]
			_ = m.w[(r+1)*m.rowBytes-1]
			for t := t0; t < t1; t++ {
				kern(w, 0, nb, &a.qs[t*m.cols], &a.d[t*nb], &a.bsums[t*nb*16], &tmp[0], 1)
				m.dst[t*m.rows+r] = tmp[0]
			}
		}
	}
}

func dotRowsAsm(q, k []float32, kstride, n int, out []float32, scale float32) float32 {
	hd := len(q)
	if hd%8 != 0 || n == 0 {
		return dotRowsGo(q, k, kstride, n, out, scale)
	}
	_ = k[(n-1)*kstride+hd-1]
	_ = out[n-1]
	return dotRowsAVX2(&q[0], &k[0], kstride, n, hd, &out[0], scale)
}

func axpyRowsAsm(out, p, v []float32, vstride int) {
	hd, n := len(out), len(p)
	if hd%8 != 0 || n == 0 {
		axpyRowsGo(out, p, v, vstride)
		return
	}
	_ = v[(n-1)*vstride+hd-1]
	axpyRowsAVX2(&out[0], &p[0], &v[0], vstride, n, hd)
}

func expSubAsm(x []float32, m float32) float32 {
	n := len(x) &^ 7
	var s float32
	if n > 0 {
		s = expSubAVX2(&x[0], n, m)
	}
	return s + expSubGo(x[n:], m)
}

func widenF16Asm(dst []float32, src []byte) {
	n := len(dst) &^ 7
	if n > 0 {
		_ = src[2*len(dst)-1]
		f16ToF32AVX2(&dst[0], &src[0], n)
	}
	dequantizeUnchecked(dst[n:], F16, src[2*n:2*len(dst)])
}

// tileBF16Asm is tileF16Asm for bfloat16 weights.
func tileBF16Asm(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
	for r := r0; r < r1; r++ {
		wb := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		if t1-t0 == 1 {
			x := m.x[t0*m.cols : (t0+1)*m.cols]
			m.dst[t0*m.rows+r] = dotBF16AVX2(&wb[0], &x[0], m.cols)
			continue
		}
		ws.f32 = growF32(ws.f32, m.cols)
		dequantizeUnchecked(ws.f32, BF16, wb)
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotF32Asm(ws.f32, m.x[t*m.cols:(t+1)*m.cols])
		}
	}
}

type floatX4Kernel func(w *byte, stride, n int, x *float32, out *float32, ostride int)

// tileFloatX4 serves decode (one token) with a four-distant-rows float kernel, as
// tileX4 does for the quantized types; batches, where each row is reused by every
// token from cache, and rows not a multiple of 8 wide go to other.
func tileFloatX4(kern floatX4Kernel, other tileFunc) tileFunc {
	return func(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
		q := (r1 - r0) / 4
		if t1-t0 != 1 || m.cols%8 != 0 || q == 0 {
			other(m, r0, r1, t0, t1, ws)
			return
		}
		_ = m.w[(r0+4*q)*m.rowBytes-1]
		_ = m.dst[t0*m.rows+r0+4*q-1]
		x := m.x[t0*m.cols : (t0+1)*m.cols]
		for i := range q {
			r := r0 + i
			kern(&m.w[r*m.rowBytes], q*m.rowBytes, m.cols, &x[0], &m.dst[t0*m.rows+r], q)
		}
		if r0+4*q < r1 {
			other(m, r0+4*q, r1, t0, t1, ws)
		}
	}
}

type gemmFloatKernel func(w *byte, wstride, k int, x *float32, xstride int, out *float32, ostride int)

// Float prefill tiling: 4 rows × 6 tokens per kernel call, k in chunks of
// gemmFloatK columns. A tile of six tokens' chunk (12 KB) stays in L1 while every
// row group of the worker's rows passes, and those rows' chunk (a few hundred rows ×
// 2 KB) stays in L2 from one token tile to the next.
const (
	gemmFloatTokens = 6
	gemmFloatK      = 512
)

// tileGemmFloat runs the AVX-512 float tile for batches of whole tiles and leaves
// single tokens, widths that are not a multiple of 16, leftover rows and leftover
// tokens to other.
func tileGemmFloat(set, add gemmFloatKernel, elemBytes int, other tileFunc) tileFunc {
	return func(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
		nt := (t1 - t0) / gemmFloatTokens * gemmFloatTokens
		r4 := r0 + (r1-r0)/4*4
		if m.cols%16 != 0 || nt == 0 || r4 == r0 {
			other(m, r0, r1, t0, t1, ws)
			return
		}
		_ = m.w[r4*m.rowBytes-1]
		_ = m.x[(t0+nt)*m.cols-1]
		_ = m.dst[(t0+nt-1)*m.rows+r4-1]
		for k0 := 0; k0 < m.cols; k0 += gemmFloatK {
			kn := min(gemmFloatK, m.cols-k0)
			kern := set
			if k0 > 0 {
				kern = add
			}
			for t := t0; t < t0+nt; t += gemmFloatTokens {
				// Packing the tile's activations side by side keeps its six rows
				// from landing in the same L1 sets, as rows a power of two
				// apart do.
				ws.f32b = growF32(ws.f32b, gemmFloatTokens*kn)
				for i := range gemmFloatTokens {
					copy(ws.f32b[i*kn:(i+1)*kn], m.x[(t+i)*m.cols+k0:(t+i)*m.cols+k0+kn])
				}
				for r := r0; r < r4; r += 4 {
					kern(&m.w[r*m.rowBytes+k0*elemBytes], m.rowBytes, kn, &ws.f32b[0], kn, &m.dst[t*m.rows+r], m.rows)
				}
			}
		}
		if t0+nt < t1 {
			other(m, r0, r4, t0+nt, t1, ws)
		}
		if r4 < r1 {
			other(m, r4, r1, t0, t1, ws)
		}
	}
}

type gemmKKernel func(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)

// tileGemmK is tileGemm for K-quant weights against Q8_K activations, k in chunks
// of gemmKBlocks 32-value blocks (whole 256-value blocks).
func tileGemmK(set, add gemmKKernel, dt DType, matvec tileFunc) tileFunc {
	const chunk = gemmKBlocks * qk / qkK // 256-value blocks per pass
	blockBytes := dt.TypeSize()
	per := asumFloats(dt)
	return func(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
		g := m.g
		if g == nil || t0 != 0 || t1 != m.n {
			matvec(m, r0, r1, t0, t1, ws)
			return
		}
		nsb := m.cols / qkK
		kstride := g.pairs * 64
		r4 := r0 + (r1-r0)/4*4
		if r4 > r0 {
			_ = m.w[r4*m.rowBytes-1]
			_ = m.dst[(m.n-1)*m.rows+r4-1]
		}
		for s0 := 0; s0 < nsb; s0 += chunk {
			sn := min(chunk, nsb-s0)
			kern := set
			if s0 > 0 {
				kern = add
			}
			for r := r0; r < r4; r += 4 {
				w := &m.w[r*m.rowBytes+s0*blockBytes]
				for p := 0; p < g.pairs; p += gemmPairsPerTile {
					t := 2 * p
					if t >= m.n {
						break
					}
					o := s0*8*g.pairs + p
					so := (s0*g.pairs + p) * per
					kern(w, m.rowBytes, sn, &g.acts[o*64], &g.sa[o*16], &g.asum[so], kstride, g.pairs*per*4,
						&m.dst[t*m.rows+r], 4*m.rows, min(8, m.n-t))
				}
			}
		}
		if r4 < r1 {
			matvec(m, r4, r1, t0, t1, ws)
		}
	}
}

// quantQ8KAsm is quantizeQ8KBlocks with the scans and the value loop in assembly;
// the result is the same bytes.
func quantQ8KAsm(a *q8KAct, b0 int, x []float32) {
	for b := 0; b < len(x)/qkK; b++ {
		xs := x[b*qkK : b*qkK+qkK]
		qs := a.qs[(b0+b)*qkK : (b0+b)*qkK+qkK]
		bs := a.bsums[(b0+b)*16 : (b0+b)*16+16]
		hi, lo := maxMinAVX2(&xs[0], qkK)
		mx := hi
		switch {
		case -lo > hi:
			mx = lo
		case -lo == hi && hi != 0:
			// Both signs reach the largest magnitude: the reference keeps the
			// first.
			for _, v := range xs {
				if abs32(v) == hi {
					mx = v
					break
				}
			}
		}
		if mx == 0 {
			clear(qs)
			clear(bs)
			a.d[b0+b] = 0
			continue
		}
		iscale := -127 / mx
		quantQ8KAVX2(&xs[0], qkK, iscale, &qs[0])
		for j := range 16 {
			var s int16
			for _, q := range qs[16*j : 16*j+16] {
				s += int16(q)
			}
			bs[j] = s
		}
		a.d[b0+b] = 1 / iscale
	}
}
