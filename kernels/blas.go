package kernels

import "log/slog"

// blasMinTokens is the batch size from which a float product goes to BLAS: below
// it the call overhead and BLAS's own thread wake-up cost more than they save.
const blasMinTokens = 16

// blasPanelRows is how many F16 weight rows are widened to float32 per sgemm call:
// a few megabytes of scratch instead of a float32 copy of the whole matrix.
const blasPanelRows = 256

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
func loadBLAS(path string, threads int, log *slog.Logger) *blasLib {
	if path == "off" {
		return nil
	}
	candidates := blasCandidates
	if path != "" {
		candidates = []string{path}
	}
	for _, p := range candidates {
		b, err := openBLAS(p, threads)
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

// blasMatMul computes dst = x·Wᵀ with cblas_sgemm: float32 weights directly, F16
// weights a panel of rows at a time.
func (c *cpu) blasMatMul(s *callScratch, m *cpuMatrix, dst, x []float32, n int) {
	sg := c.blas.sgemm
	if m.dt == F32 {
		if w := bytesAsF32(m.data); w != nil {
			sg(cblasRowMajor, cblasNoTrans, cblasTrans, int32(n), int32(m.rows), int32(m.cols), 1,
				&x[0], int32(m.cols), &w[0], int32(m.cols), 0, &dst[0], int32(m.rows))
			return
		}
	}
	// F16 (or unaligned F32, which this widening would misread: convert it on the
	// generic path instead).
	if m.dt != F16 {
		for r0 := 0; r0 < m.rows; r0 += blasPanelRows {
			r1 := min(r0+blasPanelRows, m.rows)
			s.ws.f32b = growF32(s.ws.f32b, (r1-r0)*m.cols)
			dequantizeUnchecked(s.ws.f32b, m.dt, m.data[r0*m.rowBytes:r1*m.rowBytes])
			sg(cblasRowMajor, cblasNoTrans, cblasTrans, int32(n), int32(r1-r0), int32(m.cols), 1,
				&x[0], int32(m.cols), &s.ws.f32b[0], int32(m.cols), 0, &dst[r0], int32(m.rows))
		}
		return
	}
	for r0 := 0; r0 < m.rows; r0 += blasPanelRows {
		r1 := min(r0+blasPanelRows, m.rows)
		s.ws.f32b = growF32(s.ws.f32b, (r1-r0)*m.cols)
		c.kern.widenF16(s.ws.f32b, m.data[r0*m.rowBytes:r1*m.rowBytes])
		sg(cblasRowMajor, cblasNoTrans, cblasTrans, int32(n), int32(r1-r0), int32(m.cols), 1,
			&x[0], int32(m.cols), &s.ws.f32b[0], int32(m.cols), 0, &dst[r0], int32(m.rows))
	}
}
