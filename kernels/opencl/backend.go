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

// ErrUnavailable: no OpenCL library could be loaded, or it offers no device.
// Callers fall back to the CPU backend.
var ErrUnavailable = errors.New("opencl: unavailable")

// OpenCL constants (cl.h).
const (
	clSuccess          = 0
	clDeviceTypeGPU    = 1 << 2
	clDeviceTypeAll    = 0xFFFFFFFF
	clDeviceName       = 0x102B
	clProgramBuildLog  = 0x1183
	clMemReadWrite     = 1 << 0
	clMemReadOnly      = 1 << 2
	clMemCopyHostPtr   = 1 << 5
	maxPlatforms       = 16
	maxDevicesPerQuery = 16
)

type config struct {
	library string
	device  int
	cpu     kernels.Backend
	log     *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithLibrary loads OpenCL from path instead of the usual names.
func WithLibrary(path string) Option { return func(c *config) error { c.library = path; return nil } }

// WithDevice picks the i-th device in preference order (GPUs first, then the
// rest, platform by platform): a machine with two cards serves on either.
func WithDevice(i int) Option {
	return func(c *config) error {
		if i < 0 {
			return fmt.Errorf("opencl: device %d", i)
		}
		c.device = i
		return nil
	}
}

// WithCPU is the backend for what does not run on the device yet (see doc.go);
// by default a CPU backend of all cores, closed with this one.
func WithCPU(be kernels.Backend) Option { return func(c *config) error { c.cpu = be; return nil } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// Backend runs the layer engine's kernels on an OpenCL device.
type Backend struct {
	cl                       *api
	cpu                      kernels.Backend
	ownCPU                   bool
	log                      *slog.Logger
	name                     string
	device, ctx, queue, prog uintptr
	kMatmul, kRMS, kSwiGLU   uintptr
	kAdd                     uintptr

	mu       sync.Mutex
	scratch  [3]buffer
	broken   error
	launches uint64
	warned   map[kernels.DType]bool
}

// buffer is a device buffer that grows.
type buffer struct {
	mem  uintptr
	size uintptr
}

// New opens the OpenCL library, picks a device and compiles the kernels.
func New(opts ...Option) (_ *Backend, err error) {
	cfg := config{log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	cl, err := load(cfg.library)
	if err != nil {
		return nil, err
	}
	b := &Backend{cl: cl, log: cfg.log, cpu: cfg.cpu, warned: map[kernels.DType]bool{}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.device, b.name, err = cl.pickDevice(cfg.device); err != nil {
		return nil, err
	}
	var code int32
	dev := b.device
	if b.ctx = cl.createContext(nil, 1, &dev, 0, 0, &code); code != clSuccess {
		return nil, clError("clCreateContext", code)
	}
	if b.queue = cl.createCommandQueue(b.ctx, b.device, 0, &code); code != clSuccess {
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
	return b, nil
}

// pickDevice lists the devices of every platform, GPUs first, and takes the
// i-th.
func (cl *api) pickDevice(i int) (uintptr, string, error) {
	var platforms [maxPlatforms]uintptr
	var np uint32
	if code := cl.getPlatformIDs(maxPlatforms, &platforms[0], &np); code != clSuccess || np == 0 {
		return 0, "", fmt.Errorf("%w: no OpenCL platform (clGetPlatformIDs: %d)", ErrUnavailable, code)
	}
	var gpus, others []uintptr
	for _, p := range platforms[:min(np, maxPlatforms)] {
		var devs [maxDevicesPerQuery]uintptr
		var nd uint32
		if cl.getDeviceIDs(p, clDeviceTypeAll, maxDevicesPerQuery, &devs[0], &nd) != clSuccess {
			continue
		}
		for _, d := range devs[:min(nd, maxDevicesPerQuery)] {
			var g [maxDevicesPerQuery]uintptr
			var ng uint32
			isGPU := false
			if cl.getDeviceIDs(p, clDeviceTypeGPU, maxDevicesPerQuery, &g[0], &ng) == clSuccess {
				for _, x := range g[:min(ng, maxDevicesPerQuery)] {
					isGPU = isGPU || x == d
				}
			}
			if isGPU {
				gpus = append(gpus, d)
			} else {
				others = append(others, d)
			}
		}
	}
	all := append(gpus, others...)
	if i >= len(all) {
		return 0, "", fmt.Errorf("%w: device %d of %d", ErrUnavailable, i, len(all))
	}
	var name [256]byte
	var n uintptr
	cl.getDeviceInfo(all[i], clDeviceName, uintptr(len(name)), unsafe.Pointer(&name[0]), &n)
	return all[i], strings.TrimRight(string(name[:min(int(n), len(name))]), "\x00"), nil
}

// build compiles kernels.cl for the device, with the compiler's log on failure.
func (b *Backend) build() error {
	cl := b.cl
	src := append([]byte(source), 0)
	p := &src[0]
	length := uintptr(len(source))
	var code int32
	if b.prog = cl.createProgramWithSource(b.ctx, 1, &p, &length, &code); code != clSuccess {
		return clError("clCreateProgramWithSource", code)
	}
	dev := b.device
	if code := cl.buildProgram(b.prog, 1, &dev, nil, 0, 0); code != clSuccess {
		var log [8192]byte
		var n uintptr
		cl.getProgramBuildInfo(b.prog, b.device, clProgramBuildLog, uintptr(len(log)), unsafe.Pointer(&log[0]), &n)
		return fmt.Errorf("opencl: build kernels: %w\n%s", clError("clBuildProgram", code), log[:min(int(n), len(log))])
	}
	for name, k := range map[string]*uintptr{"matmul_f32": &b.kMatmul, "rmsnorm": &b.kRMS, "swiglu": &b.kSwiGLU, "add": &b.kAdd} {
		cname := append([]byte(name), 0)
		if *k = cl.createKernel(b.prog, &cname[0], &code); code != clSuccess {
			return clError("clCreateKernel "+name, code)
		}
	}
	return nil
}

func clError(call string, code int32) error { return fmt.Errorf("opencl: %s: error %d", call, code) }

// Name implements kernels.Backend.
func (b *Backend) Name() string { return "opencl/" + b.name }

// matrix is a weight matrix: on the device when its type has a device kernel
// (F32 for now), and always on the CPU backend too, which keeps a reference
// to the (memory-mapped) data rather than a copy.
type matrix struct {
	cpu kernels.Matrix
	mem uintptr
}

func (m *matrix) Rows() int            { return m.cpu.Rows() }
func (m *matrix) Cols() int            { return m.cpu.Cols() }
func (m *matrix) DType() kernels.DType { return m.cpu.DType() }

// NewMatrix implements kernels.Backend: F32 weights are uploaded once.
func (b *Backend) NewMatrix(dt kernels.DType, rows, cols int, data []byte) (kernels.Matrix, error) {
	cm, err := b.cpu.NewMatrix(dt, rows, cols, data)
	if err != nil {
		return nil, err
	}
	m := &matrix{cpu: cm}
	if dt != kernels.F32 {
		b.mu.Lock()
		if !b.warned[dt] {
			b.warned[dt] = true
			b.log.Info("opencl: no device kernel for this weight type yet; its products run on the CPU", "dtype", dt)
		}
		b.mu.Unlock()
		return m, nil
	}
	var code int32
	m.mem = b.cl.createBuffer(b.ctx, clMemReadOnly|clMemCopyHostPtr, uintptr(len(data)), unsafe.Pointer(&data[0]), &code)
	if code != clSuccess {
		return nil, clError("clCreateBuffer (weights)", code)
	}
	return m, nil
}

// onDevice runs f with the device lock held unless the device failed before;
// on failure it logs once and reports false, and the caller computes on the
// CPU: the interface has no error to return, and the text must not change.
func (b *Backend) onDevice(f func() error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken != nil {
		return false
	}
	if err := f(); err != nil {
		b.broken = err
		b.log.Warn("opencl: device failed; the CPU backend takes over", "err", err)
		return false
	}
	return true
}

// upload copies floats into scratch buffer i, grown as needed.
func (b *Backend) upload(i int, v []float32) (uintptr, error) {
	size := uintptr(len(v)) * 4
	s := &b.scratch[i]
	if s.size < size {
		if s.mem != 0 {
			b.cl.releaseMemObject(s.mem)
			s.mem, s.size = 0, 0
		}
		var code int32
		if s.mem = b.cl.createBuffer(b.ctx, clMemReadWrite, size, nil, &code); code != clSuccess {
			s.mem = 0
			return 0, clError("clCreateBuffer (scratch)", code)
		}
		s.size = size
	}
	if len(v) > 0 {
		if code := b.cl.enqueueWriteBuffer(b.queue, s.mem, 1, 0, size, unsafe.Pointer(&v[0]), 0, 0, 0); code != clSuccess {
			return 0, clError("clEnqueueWriteBuffer", code)
		}
	}
	return s.mem, nil
}

// run sets a kernel's arguments and runs it over global work items, then
// reads out (len(out) floats) from buffer src.
func (b *Backend) run(k uintptr, global []uintptr, args []any, src uintptr, out []float32) error {
	for i, a := range args {
		var code int32
		switch v := a.(type) {
		case uintptr:
			code = b.cl.setKernelArg(k, uint32(i), unsafe.Sizeof(v), unsafe.Pointer(&v))
		case int32:
			code = b.cl.setKernelArg(k, uint32(i), 4, unsafe.Pointer(&v))
		case float32:
			code = b.cl.setKernelArg(k, uint32(i), 4, unsafe.Pointer(&v))
		default:
			return fmt.Errorf("opencl: kernel argument %T", a)
		}
		if code != clSuccess {
			return clError(fmt.Sprintf("clSetKernelArg %d", i), code)
		}
	}
	if code := b.cl.enqueueNDRangeKernel(b.queue, k, uint32(len(global)), nil, &global[0], nil, 0, 0, 0); code != clSuccess {
		return clError("clEnqueueNDRangeKernel", code)
	}
	b.launches++
	if code := b.cl.enqueueReadBuffer(b.queue, src, 1, 0, uintptr(len(out))*4, unsafe.Pointer(&out[0]), 0, 0, 0); code != clSuccess {
		return clError("clEnqueueReadBuffer", code)
	}
	return nil
}

// MatMul implements kernels.Backend.
func (b *Backend) MatMul(dst, x []float32, n int, w kernels.Matrix) {
	m := w.(*matrix)
	rows, cols := m.Rows(), m.Cols()
	if n == 0 || m.mem == 0 || !b.onDevice(func() error {
		xb, err := b.upload(0, x[:n*cols])
		if err != nil {
			return err
		}
		db, err := b.upload(1, dst[:n*rows])
		if err != nil {
			return err
		}
		return b.run(b.kMatmul, []uintptr{uintptr(rows), uintptr(n)}, []any{db, xb, m.mem, int32(rows), int32(cols)}, db, dst[:n*rows])
	}) {
		b.cpu.MatMul(dst, x, n, m.cpu)
	}
}

// Rows implements kernels.Backend (the embedding lookup stays on the CPU: it
// copies rows, no arithmetic).
func (b *Backend) Rows(dst []float32, w kernels.Matrix, ids []int32) {
	b.cpu.Rows(dst, w.(*matrix).cpu, ids)
}

// RMSNorm implements kernels.Backend.
func (b *Backend) RMSNorm(dst, x, gain []float32, eps float32) {
	w := len(gain)
	if w == 0 || len(x) == 0 || !b.onDevice(func() error {
		xb, err := b.upload(0, x)
		if err != nil {
			return err
		}
		gb, err := b.upload(2, gain)
		if err != nil {
			return err
		}
		db, err := b.upload(1, dst[:len(x)])
		if err != nil {
			return err
		}
		return b.run(b.kRMS, []uintptr{uintptr(len(x) / w)}, []any{db, xb, gb, int32(w), eps}, db, dst[:len(x)])
	}) {
		b.cpu.RMSNorm(dst, x, gain, eps)
	}
}

// RoPE implements kernels.Backend, on the CPU for now (doc.go).
func (b *Backend) RoPE(x []float32, n, heads, headDim int, r kernels.RoPE) {
	b.cpu.RoPE(x, n, heads, headDim, r)
}

// Attend implements kernels.Backend, on the CPU for now (doc.go).
func (b *Backend) Attend(dst, q []float32, a kernels.Attention) { b.cpu.Attend(dst, q, a) }

// SwiGLU implements kernels.Backend.
func (b *Backend) SwiGLU(dst, gate, up []float32) {
	if len(dst) == 0 || !b.onDevice(func() error {
		gb, err := b.upload(0, gate[:len(dst)])
		if err != nil {
			return err
		}
		ub, err := b.upload(2, up[:len(dst)])
		if err != nil {
			return err
		}
		db, err := b.upload(1, dst)
		if err != nil {
			return err
		}
		return b.run(b.kSwiGLU, []uintptr{uintptr(len(dst))}, []any{db, gb, ub}, db, dst)
	}) {
		b.cpu.SwiGLU(dst, gate, up)
	}
}

// Add implements kernels.Backend.
func (b *Backend) Add(dst, x []float32) {
	if len(dst) == 0 || len(x) == 0 || !b.onDevice(func() error {
		db, err := b.upload(1, dst)
		if err != nil {
			return err
		}
		xb, err := b.upload(0, x)
		if err != nil {
			return err
		}
		return b.run(b.kAdd, []uintptr{uintptr(len(dst))}, []any{db, xb, int32(len(x))}, db, dst)
	}) {
		b.cpu.Add(dst, x)
	}
}

// Launches is how many kernels ran on the device, and Err why the device was
// given up (nil while it works): what a test or a benchmark checks to know
// the work was the device's, since failures fall back to the CPU silently
// but for one log line.
func (b *Backend) Launches() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.launches
}

// Err is the device failure that made the backend fall back to the CPU.
func (b *Backend) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.broken
}

// Close implements kernels.Backend: it releases the device's objects (weight
// buffers go with the context) and the CPU backend it made.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl := b.cl
	for i := range b.scratch {
		if b.scratch[i].mem != 0 {
			cl.releaseMemObject(b.scratch[i].mem)
			b.scratch[i] = buffer{}
		}
	}
	for _, k := range []*uintptr{&b.kMatmul, &b.kRMS, &b.kSwiGLU, &b.kAdd} {
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
		b.cpu = nil
	}
	return err
}
