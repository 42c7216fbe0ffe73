package opencl

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unsafe"

	"github.com/imece/imece/kernels"
)

//go:embed kernels.cl
var source string

// Work-group geometry, matching kernels.cl: reductions use wg items (a power
// of two, at most maxWG), gemm tiles tile×tile items.
const (
	maxWG = 64
	tile  = 16
	// gemmMin is the batch from which prefill takes the tiled kernel: below
	// it, reading the weights once per token costs less than the tile's
	// barriers.
	gemmMin = 4
	// attendScratch bounds the attention scores kept on the device at once
	// (floats); longer prefills run in chunks of queries.
	attendScratch = 4 << 20
)

// deviceTypes are the weight types with device kernels, named in kernels.cl
// by their lower-case names: every type kernels/dtype.go defines.
func deviceTypes() []kernels.DType {
	return []kernels.DType{kernels.F32, kernels.F16, kernels.BF16, kernels.Q8_0, kernels.Q4_0, kernels.Q4_K, kernels.Q6_K}
}

type config struct {
	library    string
	device     int
	deviceName string
	cpu        kernels.Backend
	log        *slog.Logger
	// groupMatVec takes the work-group-per-row decode kernel whatever the
	// device (tests: PoCL is a CPU device, and the GPU kernel must be
	// tested too).
	groupMatVec bool
}

func configure(opts []Option) (config, error) {
	cfg := config{log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// Option configures New.
type Option func(*config) error

// WithLibrary loads OpenCL from path instead of the usual names: a driver's
// own ICD loader, or a test's deliberately broken one.
func WithLibrary(path string) Option { return func(c *config) error { c.library = path; return nil } }

// WithDevice picks the i-th device in preference order (Devices lists them):
// a machine with two cards can serve on either.
func WithDevice(i int) Option {
	return func(c *config) error {
		if i < 0 {
			return fmt.Errorf("opencl: device index %d is negative", i)
		}
		c.device = i
		return nil
	}
}

// WithDeviceName picks the first device whose name contains s (any case), so
// an operator can say "rx 7900" rather than count devices.
func WithDeviceName(s string) Option { return func(c *config) error { c.deviceName = s; return nil } }

// WithCPU is the backend that computes what the device cannot: a weight
// matrix the device has no room for, and every call once the device has
// failed. By default New makes a CPU backend of all cores and Close closes it;
// one given here is the caller's to close.
func WithCPU(be kernels.Backend) Option {
	return func(c *config) error {
		if be == nil {
			return errors.New("opencl: nil CPU backend")
		}
		c.cpu = be
		return nil
	}
}

// WithLogger sets where the backend reports its device and its fallbacks
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("opencl: nil logger")
		}
		c.log = l
		return nil
	}
}

// Backend is kernels.Backend on an OpenCL device. It is safe for concurrent
// use: one mutex serialises the command queue, which a device runs in order
// anyway.
type Backend struct {
	cl     *api
	cpu    kernels.Backend
	ownCPU bool
	log    *slog.Logger
	dev    Device
	wg     int
	gemmOK bool
	// rowVec: decode products take one work item per row (CPU devices)
	// rather than a work-group per row (GPUs).
	rowVec bool

	ctx, queue, prog uintptr
	matvec, gemm     map[kernels.DType]uintptr
	rowvec           map[kernels.DType]uintptr // CPU devices' decode kernels
	rows             map[kernels.DType]uintptr
	kRMS, kRoPE      uintptr
	kAttend, kSwiGLU uintptr
	kAdd             uintptr

	mu       sync.Mutex
	slots    [nSlots]buffer
	weights  []uintptr
	broken   error
	launches uint64
	warned   map[string]bool
	closed   bool
}

// Scratch buffers, one per role, each grown to the largest call so far.
const (
	slotX = iota
	slotDst
	slotAux // gain, up, ids, inverse frequencies, the residual's addend
	slotK
	slotV
	slotScores
	nSlots
)

type buffer struct {
	mem  uintptr
	size uintptr
}

// New loads OpenCL, picks a device (GPUs first, or as WithDevice and
// WithDeviceName say) and compiles the kernels for it. ErrUnavailable means
// there is no OpenCL or no device; any other error is a broken driver.
func New(opts ...Option) (_ *Backend, err error) {
	cfg, err := configure(opts)
	if err != nil {
		return nil, err
	}
	cl, err := load(cfg.library)
	if err != nil {
		return nil, err
	}
	all, err := cl.devices()
	if err != nil {
		return nil, err
	}
	dev, err := pick(all, &cfg)
	if err != nil {
		return nil, err
	}
	b := &Backend{cl: cl, cpu: cfg.cpu, log: cfg.log, dev: dev, warned: map[string]bool{},
		matvec: map[kernels.DType]uintptr{}, rowvec: map[kernels.DType]uintptr{}, gemm: map[kernels.DType]uintptr{}, rows: map[kernels.DType]uintptr{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	b.rowVec = dev.Type == "cpu" && !cfg.groupMatVec
	b.wg = maxWG
	for b.wg > 1 && b.wg > dev.MaxWorkGroup {
		b.wg /= 2
	}
	var code int32
	id := dev.id
	if b.ctx = cl.createContext(nil, 1, &id, 0, 0, &code); code != clSuccess {
		return nil, clError("clCreateContext", code)
	}
	if b.queue = cl.createCommandQueue(b.ctx, dev.id, 0, &code); code != clSuccess {
		return nil, clError("clCreateCommandQueue", code)
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	if b.cpu == nil {
		if b.cpu, err = kernels.NewCPU(); err != nil {
			return nil, err
		}
		b.ownCPU = true
	}
	b.log.Info("opencl backend", "device", dev.Name, "type", dev.Type, "platform", dev.Platform,
		"memory_mib", dev.GlobalMem>>20, "work_group", b.wg, "tiled_prefill", b.gemmOK, "row_per_item_decode", b.rowVec)
	return b, nil
}

// build compiles kernels.cl for the device, with the compiler's log on
// failure, and creates every kernel.
func (b *Backend) build() error {
	cl := b.cl
	src := append([]byte(source), 0)
	p := &src[0]
	length := uintptr(len(source))
	var code int32
	if b.prog = cl.createProgramWithSource(b.ctx, 1, &p, &length, &code); code != clSuccess {
		return clError("clCreateProgramWithSource", code)
	}
	opts := append([]byte(fmt.Sprintf("-D WG=%d", b.wg)), 0)
	id := b.dev.id
	if code := cl.buildProgram(b.prog, 1, &id, &opts[0], 0, 0); code != clSuccess {
		var log [16384]byte
		var n uintptr
		cl.getProgramBuildInfo(b.prog, id, clProgramBuildLog, uintptr(len(log)), unsafe.Pointer(&log[0]), &n)
		return fmt.Errorf("opencl: compile kernels.cl for %s: %w\n%s", b.dev.Name, clError("clBuildProgram", code), log[:min(int(n), len(log))])
	}
	kernel := func(name string) (uintptr, error) {
		cname := append([]byte(name), 0)
		k := cl.createKernel(b.prog, &cname[0], &code)
		if code != clSuccess {
			return 0, clError("clCreateKernel "+name, code)
		}
		return k, nil
	}
	var err error
	b.gemmOK = b.dev.MaxWorkGroup >= tile*tile
	for _, dt := range deviceTypes() {
		suffix := strings.ToLower(dt.String())
		if b.matvec[dt], err = kernel("matvec_" + suffix); err != nil {
			return err
		}
		if b.rowvec[dt], err = kernel("rowvec_" + suffix); err != nil {
			return err
		}
		if b.gemm[dt], err = kernel("gemm_" + suffix); err != nil {
			return err
		}
		if b.rows[dt], err = kernel("rows_" + suffix); err != nil {
			return err
		}
		// A kernel's own limit can be below the device's (registers, local
		// memory): then prefill takes the matrix-vector kernel per token.
		if b.kernelWG(b.gemm[dt]) < tile*tile {
			b.gemmOK = false
		}
	}
	for name, k := range map[string]*uintptr{"rmsnorm": &b.kRMS, "rope": &b.kRoPE, "attend": &b.kAttend, "swiglu": &b.kSwiGLU, "add": &b.kAdd} {
		if *k, err = kernel(name); err != nil {
			return err
		}
	}
	for _, k := range []uintptr{b.matvec[kernels.F32], b.kRMS, b.kAttend} {
		if got := b.kernelWG(k); got < b.wg {
			return fmt.Errorf("opencl: %s runs work-groups of %d at most, the kernels need %d", b.dev.Name, got, b.wg)
		}
	}
	return nil
}

func (b *Backend) kernelWG(k uintptr) int {
	var v uint64
	if b.cl.getKernelWorkGroupInfo(k, b.dev.id, clKernelWorkGroupSize, 8, unsafe.Pointer(&v), nil) != clSuccess {
		return 0
	}
	return int(v)
}

// Name implements kernels.Backend: "opencl/" and the device's name.
func (b *Backend) Name() string { return "opencl/" + b.dev.Name }

// Device is the device the backend runs on.
func (b *Backend) Device() Device { return b.dev }

// Launches is how many kernels ran on the device: what a test or a benchmark
// checks to know the work was the device's, since a failing device falls back
// to the CPU with only a log line.
func (b *Backend) Launches() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.launches
}

// Err is the device failure that made the backend give the device up and
// compute on the CPU from then on; nil while the device works.
func (b *Backend) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.broken
}

// Close implements kernels.Backend: it releases every device object (weights,
// scratch, kernels, program, queue, context) and the CPU backend New made.
// Matrices must not be used afterwards. Closing twice is harmless.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	cl := b.cl
	if b.queue != 0 {
		cl.finish(b.queue)
	}
	for _, m := range b.weights {
		cl.releaseMemObject(m)
	}
	b.weights = nil
	for i := range b.slots {
		if b.slots[i].mem != 0 {
			cl.releaseMemObject(b.slots[i].mem)
		}
		b.slots[i] = buffer{}
	}
	for _, set := range []map[kernels.DType]uintptr{b.matvec, b.rowvec, b.gemm, b.rows} {
		for dt, k := range set {
			if k != 0 {
				cl.releaseKernel(k)
			}
			delete(set, dt)
		}
	}
	for _, k := range []*uintptr{&b.kRMS, &b.kRoPE, &b.kAttend, &b.kSwiGLU, &b.kAdd} {
		if *k != 0 {
			cl.releaseKernel(*k)
			*k = 0
		}
	}
	if b.prog != 0 {
		cl.releaseProgram(b.prog)
		b.prog = 0
	}
	if b.queue != 0 {
		cl.releaseCommandQueue(b.queue)
		b.queue = 0
	}
	if b.ctx != 0 {
		cl.releaseContext(b.ctx)
		b.ctx = 0
	}
	var err error
	if b.ownCPU && b.cpu != nil {
		err = b.cpu.Close()
	}
	b.cpu = nil
	return err
}
