//go:build amd64

package kernels

// Prefill tiling over the AVX-512 kernels.

type gemmKernel func(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)

// The quantized prefill tiles work on blocks of gemmPairsPerBlock token pairs
// (128 tokens) and gemmKBlocks 32-value blocks of k (2048 columns): that much
// activation data, in the tiles' expanded layout, is about 800 KB and stays in L2
// while every row group of the worker's rows meets it. Longer prompts re-read the
// weights once per 128 tokens, which costs far less than streaming activations.
const (
	gemmKBlocks       = 64
	gemmPairsPerBlock = 64
)

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
		for p0 := 0; p0 < g.pairs && 2*p0 < m.n; p0 += gemmPairsPerBlock {
			p1 := min(p0+gemmPairsPerBlock, g.pairs)
			for k0 := 0; k0 < nb; k0 += gemmKBlocks {
				kn := min(gemmKBlocks, nb-k0)
				kern := set
				if k0 > 0 {
					kern = add
				}
				for r := r0; r < r4; r += 4 {
					w := &m.w[r*m.rowBytes+k0*blockBytes]
					for p := p0; p < p1; p += gemmPairsPerTile {
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
		}
		if r4 < r1 {
			matvec(m, r4, r1, t0, t1, ws)
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
		for p0 := 0; p0 < g.pairs && 2*p0 < m.n; p0 += gemmPairsPerBlock {
			p1 := min(p0+gemmPairsPerBlock, g.pairs)
			for s0 := 0; s0 < nsb; s0 += chunk {
				sn := min(chunk, nsb-s0)
				kern := set
				if s0 > 0 {
					kern = add
				}
				for r := r0; r < r4; r += 4 {
					w := &m.w[r*m.rowBytes+s0*blockBytes]
					for p := p0; p < p1; p += gemmPairsPerTile {
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
		}
		if r4 < r1 {
			matvec(m, r4, r1, t0, t1, ws)
		}
	}
}
