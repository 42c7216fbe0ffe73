package kernels

import (
	"fmt"
	"math"
	"strings"
)

// kernelSet is one instruction set's implementation of the inner loops. The generic
// set is complete; an assembly set starts as a copy of it and replaces what it
// accelerates, so every path always has a reference to be tested against.
type kernelSet struct {
	name   string
	dotF32 func(a, b []float32) float32
	// quantQ8 quantizes x into 32-value blocks [b0, …) of a.
	quantQ8 func(a *q8Act, b0 int, x []float32)
	// quantQ8K quantizes x into Q8_K blocks [b0, …) of a.
	quantQ8K func(a *q8KAct, b0 int, x []float32)
	axpy     func(y []float32, a float32, x []float32)
	// dotRows sets out[t] = scale·q·k[t·kstride:][:len(q)] for t < n and returns
	// the largest.
	dotRows func(q, k []float32, kstride, n int, out []float32, scale float32) float32
	// axpyRows adds Σ_t p[t]·v[t·vstride:][:len(out)] to out.
	axpyRows func(out, p, v []float32, vstride int)
	// swiglu sets dst[i] = silu(gate[i])·up[i] (equal lengths; dst may alias).
	swiglu func(dst, gate, up []float32)
	// widenF16 converts len(dst) halves from src.
	widenF16 func(dst []float32, src []byte)
	// expSub replaces x[i] by e^(x[i]−m) and returns their sum.
	expSub func(x []float32, m float32) float32
	// tiles compute m.dst[t·rows + r] for rows [r0, r1) and tokens [t0, t1).
	tiles map[DType]tileFunc
	// gemmLayout marks the types whose n > 1 tiles read matArgs.g.
	gemmLayout map[DType]bool
	// ownF16Gemm says the F16 prefill tile beats widening rows for BLAS.
	ownF16Gemm bool
}

// matArgs are the operands of one MatMul: output, weights, activations in float32
// and, for the quantized types, quantized once per call.
type matArgs struct {
	dt       DType
	dst      []float32
	rows     int
	w        []byte
	rowBytes int
	cols     int
	x        []float32
	n        int
	q8       *q8Act
	q8k      *q8KAct
	g        *gemmAct // set when the kernel set wants it (gemmLayout) and n > 1
}

type tileFunc func(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch)

func genericKernels() *kernelSet {
	return &kernelSet{
		name:     "generic",
		dotF32:   dotF32Go,
		quantQ8:  quantizeQ8Blocks,
		quantQ8K: quantizeQ8KBlocks,
		axpy:     axpyGo,
		dotRows:  dotRowsGo,
		axpyRows: axpyRowsGo,
		expSub:   expSubGo,
		swiglu:   swigluGo,
		widenF16: func(dst []float32, src []byte) { dequantizeUnchecked(dst, F16, src) },
		tiles: map[DType]tileFunc{
			F32:  tileF32Go,
			F16:  tileHalfGo,
			BF16: tileHalfGo,
			Q8_0: tileQ8_0Go,
			Q4_0: tileQ4_0Go,
			Q4_K: tileQ4KGo,
			Q6_K: tileQ6KGo,
		},
	}
}

func (k *kernelSet) clone(name string) *kernelSet {
	c := *k
	c.name = name
	c.tiles = make(map[DType]tileFunc, len(k.tiles))
	for t, f := range k.tiles {
		c.tiles[t] = f
	}
	c.gemmLayout = map[DType]bool{}
	for t, v := range k.gemmLayout {
		c.gemmLayout[t] = v
	}
	return &c
}

// selectKernels returns the named instruction set, or the best available for "".
func selectKernels(name string) (*kernelSet, error) {
	sets := availableKernels()
	if name == "" {
		return sets[len(sets)-1], nil
	}
	for _, s := range sets {
		if s.name == name || (name == "avx512" && strings.HasPrefix(s.name, "avx512")) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("kernels: instruction set %q is not available on this CPU", name)
}

func tileF32Go(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
	for r := r0; r < r1; r++ {
		wr := bytesAsF32(m.w[r*m.rowBytes : (r+1)*m.rowBytes])
		if wr == nil { // unaligned: decode a copy
			ws.f32 = growF32(ws.f32, m.cols)
			dequantizeUnchecked(ws.f32, F32, m.w[r*m.rowBytes:(r+1)*m.rowBytes])
			wr = ws.f32
		}
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotF32Go(wr, m.x[t*m.cols:(t+1)*m.cols])
		}
	}
}

// tileHalfGo widens each weight row once into the worker's scratch when several
// tokens will use it.
func tileHalfGo(m *matArgs, r0, r1, t0, t1 int, ws *workerScratch) {
	dt := m.dt
	for r := r0; r < r1; r++ {
		wb := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		if t1-t0 == 1 {
			x := m.x[t0*m.cols : (t0+1)*m.cols]
			if dt == F16 {
				m.dst[t0*m.rows+r] = dotF16Go(wb, x)
			} else {
				m.dst[t0*m.rows+r] = dotBF16Go(wb, x)
			}
			continue
		}
		ws.f32 = growF32(ws.f32, m.cols)
		dequantizeUnchecked(ws.f32, dt, wb)
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotF32Go(ws.f32, m.x[t*m.cols:(t+1)*m.cols])
		}
	}
}

func tileQ8_0Go(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
	nb := m.cols / qk
	for r := r0; r < r1; r++ {
		wr := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotQ8_0Go(wr, m.q8, t*nb, nb)
		}
	}
}

func tileQ4_0Go(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
	nb := m.cols / qk
	for r := r0; r < r1; r++ {
		wr := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotQ4_0Go(wr, m.q8, t*nb, nb)
		}
	}
}

func tileQ4KGo(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
	nb := m.cols / qkK
	for r := r0; r < r1; r++ {
		wr := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotQ4KGo(wr, m.q8k, t*nb, nb)
		}
	}
}

func tileQ6KGo(m *matArgs, r0, r1, t0, t1 int, _ *workerScratch) {
	nb := m.cols / qkK
	for r := r0; r < r1; r++ {
		wr := m.w[r*m.rowBytes : (r+1)*m.rowBytes]
		for t := t0; t < t1; t++ {
			m.dst[t*m.rows+r] = dotQ6KGo(wr, m.q8k, t*nb, nb)
		}
	}
}

func dotRowsGo(q, k []float32, kstride, n int, out []float32, scale float32) float32 {
	m := float32(math.Inf(-1))
	for t := range n {
		out[t] = dotF32Go(q, k[t*kstride:t*kstride+len(q)]) * scale
		m = max(m, out[t])
	}
	return m
}

func axpyRowsGo(out, p, v []float32, vstride int) {
	for t, pt := range p {
		axpyGo(out, pt, v[t*vstride:t*vstride+len(out)])
	}
}

func expSubGo(x []float32, m float32) float32 {
	var s float32
	for i, v := range x {
		e := expf(v - m)
		x[i] = e
		s += e
	}
	return s
}

func swigluGo(dst, gate, up []float32) {
	up = up[:len(gate)]
	dst = dst[:len(gate)]
	for i, g := range gate {
		dst[i] = silu(g) * up[i]
	}
}
