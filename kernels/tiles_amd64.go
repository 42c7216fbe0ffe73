//go:build amd64

package kernels

// Adapters between the assembly kernels and the kernelSet signatures: bounds checks
// (the kernels trust their arguments) and the splitting of rows among them.

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

func swigluAsm(dst, gate, up []float32) {
	n := len(gate) &^ 7
	if n > 0 {
		_ = up[len(gate)-1]
		_ = dst[len(gate)-1]
		siluMulAVX2(&dst[0], &gate[0], &up[0], n)
	}
	swigluGo(dst[n:], gate[n:], up[n:])
}
