package kernels

import "log/slog"

// blasMinTokens is the batch size from which a float product goes to BLAS: below
// it the call overhead costs more than it saves.
const blasMinTokens = 16

// blasPanelRows is the smallest number of weight rows one sgemm call covers. The
// backend's own workers split the rows among themselves and each calls BLAS on its
// panels, BLAS running single-threaded: OpenBLAS's own threads would spin for a
// while after every call, stealing the cores from the decode steps that follow.
// F16 panels are widened to float32 in the worker's scratch first.
const blasPanelRows = 64

// CBLAS enumerations (cblas.h).
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// blasLib is a CBLAS library loaded at run time; nil means none.
type blasLib struct {
	path  string
	sgemm func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32,
		b *float32, ldb int32, beta float32, c *float32, ldc int32)
}

// loadBLAS opens path, or searches the usual OpenBLAS names when path is "", and
// reports what it found. "off" disables BLAS; a library that cannot be opened is
// logged and skipped, never fatal.
func loadBLAS(path string, log *slog.Logger) *blasLib {
	if path == "off" {
		return nil
	}
	candidates := blasCandidates
	if path != "" {
		candidates = []string{path}
	}
	for _, p := range candidates {
		b, err := openBLAS(p)
		if err == nil {
			log.Info("blas loaded", "path", p)
			return b
		}
		if path != "" {
			log.Warn("blas not loaded", "path", p, "err", err)
		}
	}
	if path == "" {
		log.Debug("no blas library found; float prefill uses the built-in kernels")
	}
	return nil
}

func (b *blasLib) ok() bool { return b != nil }

func (b *blasLib) String() string {
	if b == nil {
		return "none"
	}
	return b.path
}

// blasMatMul computes dst = x·Wᵀ with cblas_sgemm, a panel of rows per worker.
func (c *cpu) blasMatMul(s *callScratch, m *cpuMatrix, n int) {
	j := &s.job
	j.fn = blasJob
	j.blas = c.blas
	j.items = m.rows
	j.grain = max(blasPanelRows, (m.rows+2*c.cfg.threads-1)/(2*c.cfg.threads))
	c.pool.parallel(j, &s.ws)
}

func blasJob(j *job, lo, hi int, ws *workerScratch) {
	m := &j.mat
	w := bytesAsF32(m.w[lo*m.rowBytes : hi*m.rowBytes])
	if m.dt != F32 || w == nil {
		ws.f32b = growF32(ws.f32b, (hi-lo)*m.cols)
		if m.dt == F16 {
			j.kern.widenF16(ws.f32b, m.w[lo*m.rowBytes:hi*m.rowBytes])
		} else {
			dequantizeUnchecked(ws.f32b, m.dt, m.w[lo*m.rowBytes:hi*m.rowBytes])
		}
		w = ws.f32b
	}
	j.blas.sgemm(cblasRowMajor, cblasNoTrans, cblasTrans, int32(m.n), int32(hi-lo), int32(m.cols), 1,
		&m.x[0], int32(m.cols), &w[0], int32(m.cols), 0, &m.dst[lo], int32(m.rows))
}
