// Package backends chooses the compute backend a node runs on: the CPU, or a
// GPU API loaded at run time (kernels/opencl; CUDA and Metal are the next
// ones). A backend that cannot start — no library, no device, a driver that
// fails — gives way to the CPU with a message saying why, so one binary runs
// on every machine.
package backends

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unsafe"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/opencl"
)

// Names are the values of --backend.
func Names() []string { return []string{"auto", "cpu", "opencl", "cuda", "metal"} }

type config struct {
	threads int
	log     *slog.Logger
}

// Option configures Open.
type Option func(*config)

// WithThreads sets the CPU backend's threads (0: all cores).
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Open starts the backend called name and says why it is the one running:
//
//   - cpu: the CPU backend.
//   - opencl: the first OpenCL device (GPUs first); without one, the CPU.
//   - cuda, metal: not in this version; the CPU.
//   - auto: every backend that starts is timed on a decode-shaped matrix
//     product (the operation that dominates decoding), and the fastest runs.
func Open(name string, opts ...Option) (kernels.Backend, string, error) {
	cfg := config{log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	var copts []kernels.Option
	if cfg.threads > 0 {
		copts = append(copts, kernels.WithThreads(cfg.threads))
	}
	cpu, err := kernels.NewCPU(copts...)
	if err != nil {
		return nil, "", fmt.Errorf("start CPU backend: %w", err)
	}
	switch name {
	case "cpu":
		return cpu, "asked for", nil
	case "cuda", "metal":
		return cpu, fmt.Sprintf("--backend %s is not in this version of imece: running on the CPU", name), nil
	case "opencl", "auto":
		cl, err := opencl.New(opencl.WithCPU(cpu), opencl.WithLogger(cfg.log))
		if err != nil {
			return cpu, fmt.Sprintf("OpenCL did not start (%v): running on the CPU", err), nil
		}
		if name == "opencl" {
			return &owned{cl, cpu}, "asked for", nil
		}
		tc, tg := timeMatVec(cpu), timeMatVec(cl)
		if tg < tc {
			return &owned{cl, cpu}, fmt.Sprintf("fastest: a 2048×2048 product takes %v on %s, %v on %s", tg, cl.Name(), tc, cpu.Name()), nil
		}
		cl.Close()
		return cpu, fmt.Sprintf("fastest: a 2048×2048 product takes %v on %s, %v on %s", tc, cpu.Name(), tg, "OpenCL"), nil
	}
	cpu.Close()
	return nil, "", fmt.Errorf("unknown backend %q: want one of %v", name, Names())
}

// owned closes the CPU backend a device backend wraps along with it.
type owned struct {
	kernels.Backend
	cpu kernels.Backend
}

func (o *owned) Close() error { return errors.Join(o.Backend.Close(), o.cpu.Close()) }

// timeMatVec is the best of a few 2048×2048 F32 matrix-vector products on be.
func timeMatVec(be kernels.Backend) time.Duration {
	const n = 2048
	w := make([]float32, n*n)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	m, err := be.NewMatrix(kernels.F32, n, n, unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*4))
	if err != nil {
		return time.Hour
	}
	x, dst := make([]float32, n), make([]float32, n)
	best := time.Hour
	for range 5 {
		start := time.Now()
		be.MatMul(dst, x, 1, m)
		best = min(best, time.Since(start))
	}
	return best
}
