package kernels

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
)

// cpuConfig is what the options of NewCPU set.
type cpuConfig struct {
	threads  int
	isa      string // "" picks the best the CPU has
	blasPath string // "" auto-detects, "off" disables
	logger   *slog.Logger
}

// Option configures NewCPU.
type Option func(*cpuConfig) error

// WithThreads sets how many goroutines (the caller's included) share each call.
// The default, runtime.NumCPU(), is right for a machine serving one model; fewer
// leave cores to the network stack on a busy node.
func WithThreads(n int) Option {
	return func(c *cpuConfig) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("kernels: thread count %d out of range [1, 1024]", n)
		}
		c.threads = n
		return nil
	}
}

// WithISA forces an instruction set: "generic" (pure Go), "avx2" or "avx512". Tests
// use it to check every path against the generic one; asking for one the CPU lacks
// is an error rather than a crash on the first illegal instruction.
func WithISA(name string) Option {
	return func(c *cpuConfig) error {
		c.isa = name
		return nil
	}
}

// WithBLAS names the OpenBLAS (or other CBLAS) shared library used for float32
// prefill products; "" (the default) searches the usual names, "off" disables it.
// Without a library every product still runs on the backend's own kernels. The
// backend's workers call BLAS in parallel, one panel of rows each, so OpenBLAS is
// loaded with OPENBLAS_NUM_THREADS=1 (unless set already) and told to use one
// thread: its own pool would spin between calls on the cores decode needs.
func WithBLAS(path string) Option {
	return func(c *cpuConfig) error {
		c.blasPath = path
		return nil
	}
}

// WithLogger sets where the backend reports its choices (instruction set, BLAS).
func WithLogger(l *slog.Logger) Option {
	return func(c *cpuConfig) error {
		if l == nil {
			return errors.New("kernels: nil logger")
		}
		c.logger = l
		return nil
	}
}

// cpu is the CPU Backend.
type cpu struct {
	cfg     cpuConfig
	kern    *kernelSet
	pool    *pool
	scratch chan *callScratch
	blas    *blasLib
	name    string
}

// callScratch is everything one call needs besides the workers' own scratch: the
// job handed to them, quantized activations, the caller's worker scratch. Calls take
// one from a free list and give it back, so steady-state calls do not allocate and
// concurrent sessions never share one.
type callScratch struct {
	job  job
	q8   q8Act
	q8k  q8KAct
	gemm gemmAct
	ws   workerScratch
	trig []float32
	part []float32 // attention segments' partial results
}

// NewCPU returns the CPU backend with its worker pool started; Close stops it.
func NewCPU(opts ...Option) (Backend, error) {
	cfg := cpuConfig{threads: runtime.NumCPU(), logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	kern, err := selectKernels(cfg.isa)
	if err != nil {
		return nil, err
	}
	c := &cpu{
		cfg:     cfg,
		kern:    kern,
		pool:    newPool(cfg.threads),
		scratch: make(chan *callScratch, 64),
		name:    fmt.Sprintf("cpu/%s×%d", kern.name, cfg.threads),
	}
	c.blas = loadBLAS(cfg.blasPath, cfg.logger)
	cfg.logger.Info("cpu backend", "isa", kern.name, "threads", cfg.threads, "blas", c.blas.String())
	return c, nil
}

func (c *cpu) Name() string { return c.name }

// Close stops the workers. The backend must not be used afterwards.
func (c *cpu) Close() error {
	c.pool.close()
	return nil
}

func (c *cpu) getScratch() *callScratch {
	select {
	case s := <-c.scratch:
		return s
	default:
	}
	s := &callScratch{}
	s.job.done = make(chan struct{}, c.cfg.threads)
	return s
}

func (c *cpu) putScratch(s *callScratch) {
	s.job.mat = matArgs{}
	s.job.dst, s.job.q, s.job.part, s.job.blas = nil, nil, nil, nil
	s.job.attn = Attention{}
	select {
	case c.scratch <- s:
	default:
	}
}

// cpuMatrix is a weight matrix in its stored form, referenced, not copied.
type cpuMatrix struct {
	dt         DType
	rows, cols int
	rowBytes   int
	data       []byte
}

func (m *cpuMatrix) Rows() int    { return m.rows }
func (m *cpuMatrix) Cols() int    { return m.cols }
func (m *cpuMatrix) DType() DType { return m.dt }

func (c *cpu) NewMatrix(dt DType, rows, cols int, data []byte) (Matrix, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("new matrix: unsupported tensor type %s", dt)
	}
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("new matrix: bad shape %d×%d", rows, cols)
	}
	rb, err := dt.RowBytes(int64(cols))
	if err != nil {
		return nil, fmt.Errorf("new matrix %d×%d: %w", rows, cols, err)
	}
	if int64(len(data)) != rb*int64(rows) {
		return nil, fmt.Errorf("new matrix %d×%d %s: %d bytes, want %d: %w", rows, cols, dt, len(data), rb*int64(rows), ErrLength)
	}
	return &cpuMatrix{dt: dt, rows: rows, cols: cols, rowBytes: int(rb), data: data}, nil
}
