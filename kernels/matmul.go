package kernels

import "fmt"

// MatMul implements Backend.MatMul. Quantized weights meet activations quantized
// once per call (Q8 blocks of 32 for Q8_0/Q4_0, Q8_K blocks of 256 for the
// K-quants) in integer dot products, as llama.cpp does; the weights are never
// expanded. Rows are split across the workers, each worker's rows meeting all n
// tokens while they sit in its cache.
func (c *cpu) MatMul(dst, x []float32, n int, w Matrix) {
	m, ok := w.(*cpuMatrix)
	if !ok {
		panic(fmt.Sprintf("kernels: MatMul on a %T, not a CPU matrix", w))
	}
	if n <= 0 {
		return
	}
	if len(x) < n*m.cols || len(dst) < n*m.rows {
		panic(fmt.Sprintf("kernels: MatMul of %d×%d by %d rows: x has %d values, dst %d", m.rows, m.cols, n, len(x), len(dst)))
	}
	s := c.getScratch()
	j := &s.job
	j.mat = matArgs{dt: m.dt, dst: dst, rows: m.rows, w: m.data, rowBytes: m.rowBytes, cols: m.cols, x: x, n: n}
	j.kern = c.kern
	switch m.dt {
	case Q8_0, Q4_0:
		s.q8.resize(n * m.cols)
		j.mat.q8 = &s.q8
		if n > 1 && c.kern.gemmLayout[m.dt] {
			s.gemm.resize(n, m.cols)
			j.mat.g = &s.gemm
		}
		c.quantizeActs(s, quantizeQ8Job)
	case Q4_K, Q6_K:
		s.q8k.resize(n * m.cols)
		j.mat.q8k = &s.q8k
		if n > 1 && c.kern.gemmLayout[m.dt] {
			s.gemm.resizeK(n, m.cols, m.dt)
			j.mat.g = &s.gemm
		}
		c.quantizeActs(s, quantizeQ8KJob)
	case F32, F16:
		if n >= blasMinTokens && c.blas.ok() && (m.dt == F32 || !c.kern.ownF16Gemm) {
			c.blasMatMul(s, m, n)
			c.putScratch(s)
			return
		}
	}
	j.fn = matmulJob
	j.items = m.rows
	j.grain = rowGrain(m.rows, n, c.cfg.threads)
	c.pool.parallel(j, &s.ws)
	c.putScratch(s)
}

// rowGrain picks how many weight rows a worker takes at a time: enough chunks per
// thread to even out a slow worker, few enough that the atomic counter and the
// per-chunk setup stay negligible, and a multiple of 4 for the multi-row kernels.
func rowGrain(rows, n, threads int) int {
	chunks := threads * 8
	if n > 1 {
		chunks = threads * 4
	}
	g := (rows + chunks - 1) / chunks
	g = (g + 3) &^ 3
	return max(g, 4)
}

func (c *cpu) quantizeActs(s *callScratch, fn func(j *job, lo, hi int, ws *workerScratch)) {
	j := &s.job
	j.fn = fn
	j.items = j.mat.n
	if j.mat.g != nil {
		j.items = 2 * j.mat.g.pairs // padding tokens are zeroed by the same job
	}
	j.grain = 1
	if j.mat.n < 8 {
		j.grain = j.items // not worth waking a worker
	}
	c.pool.parallel(j, &s.ws)
}

func quantizeQ8Job(j *job, lo, hi int, _ *workerScratch) {
	m := &j.mat
	bias := int32(128)
	if m.dt == Q4_0 {
		bias = 8
	}
	for t := lo; t < hi; t++ {
		if t < m.n {
			j.kern.quantQ8(m.q8, t*m.cols/qk, m.x[t*m.cols:(t+1)*m.cols])
		}
		if m.g != nil {
			m.g.expand(m.q8, t, m.cols, bias, t >= m.n)
		}
	}
}

func quantizeQ8KJob(j *job, lo, hi int, _ *workerScratch) {
	m := &j.mat
	for t := lo; t < hi; t++ {
		if t < m.n {
			j.kern.quantQ8K(m.q8k, t*m.cols/qkK, m.x[t*m.cols:(t+1)*m.cols])
		}
		if m.g != nil {
			m.g.expandK(m.q8k, t, m.cols, m.dt, t >= m.n)
		}
	}
}

func matmulJob(j *job, lo, hi int, ws *workerScratch) {
	j.kern.tiles[j.mat.dt](&j.mat, lo, hi, 0, j.mat.n, ws)
}
