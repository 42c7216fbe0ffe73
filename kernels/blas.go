package kernels

import "log/slog"

// blasMinTokens is the batch size from which a float32 product goes to BLAS: below
// it the call overhead and BLAS's own thread wake-up cost more than they save.
const blasMinTokens = 16

// blasLib is a CBLAS library loaded at run time; nil means none.
type blasLib struct{}

func loadBLAS(path string, threads int, log *slog.Logger) *blasLib { return nil }

func (b *blasLib) ok() bool { return b != nil }

func (b *blasLib) String() string {
	if b == nil {
		return "none"
	}
	return "openblas"
}

func (c *cpu) blasMatMul(s *callScratch, m *cpuMatrix, dst, x []float32, n int) {
	panic("unreachable")
}
