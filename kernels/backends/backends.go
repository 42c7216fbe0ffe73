// Package backends chooses the compute backend a process runs on: the CPU
// backend, or a GPU API loaded at run time (kernels/opencl today; CUDA and Metal
// have their places in the registry and report that this version does not have
// them). It is what --backend means, for every command that computes.
//
// An explicit name is strict: "opencl" on a machine without OpenCL is an error
// saying what is missing, because an operator who asked for a GPU must not find
// out from the credits that the CPU served. "auto" is forgiving: it starts every
// backend it can, times a decode-shaped matrix product on each (the operation
// that dominates decoding, with the per-call copies a device backend pays today)
// and keeps the fastest; one that cannot start is recorded in the Choice with
// the reason and the CPU stays available, so one binary runs on every machine.
//
// It deliberately does not benchmark the hardware for the ledger
// (node/hardware does that, on the backend chosen here) and does not know
// about models.
package backends

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/opencl"
)

// ErrUnknown is a backend name imece has never had.
var ErrUnknown = errors.New("unknown backend")

// ErrNotBuilt is a backend imece will have but this version does not (CUDA,
// Metal).
var ErrNotBuilt = errors.New("backend not built yet in this version of imece")

// Names are the values --backend accepts (opencl also as opencl:DEVICE, a
// device index or part of its name).
func Names() []string { return []string{"auto", "cpu", "opencl", "cuda", "metal"} }

type config struct {
	threads int
	log     *slog.Logger
}

// Option configures Open.
type Option func(*config) error

// WithThreads sets the CPU backend's threads (0: all cores). A device backend
// keeps a CPU backend for what its device cannot hold, with the same threads.
func WithThreads(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("backends: %d threads", n)
		}
		c.threads = n
		return nil
	}
}

// WithLogger sets where backends report their devices and fallbacks (default
// slog.Default()). Open itself does not log: the Choice is the caller's line.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("backends: nil logger")
		}
		c.log = l
		return nil
	}
}

// Choice is what Open decided and why, for one log line at start.
type Choice struct {
	// Asked is the name Open was called with.
	Asked string
	// Kind is the registry name of the backend that runs ("cpu", "opencl").
	Kind string
	// Reason says why, in a sentence.
	Reason string
	// Tried is every backend considered, in order.
	Tried []Attempt
}

// Attempt is one backend Open considered.
type Attempt struct {
	Kind string
	// Name is the started backend's Name() ("opencl/NVIDIA GeForce RTX 3060").
	Name string
	// Err is why it did not start; nil if it did.
	Err error
	// MatVec is its best time for the probe product (auto only).
	MatVec time.Duration
}

func (a Attempt) String() string {
	switch {
	case a.Err != nil:
		return fmt.Sprintf("%s: %v", a.Kind, a.Err)
	case a.MatVec > 0:
		return fmt.Sprintf("%s: %v", a.Name, a.MatVec.Round(time.Microsecond))
	}
	return a.Name
}

func (c Choice) String() string {
	if len(c.Tried) <= 1 {
		return c.Reason
	}
	parts := make([]string, len(c.Tried))
	for i, a := range c.Tried {
		parts[i] = a.String()
	}
	return c.Reason + " (" + strings.Join(parts, "; ") + ")"
}

// entry is a backend in the registry: how to start it on top of the CPU
// backend cpu (its fallback for what the device cannot hold). A device backend
// slots in with one entry.
type entry struct {
	kind string
	open func(cfg *config, device string, cpu kernels.Backend) (kernels.Backend, error)
}

func registry() []entry {
	return []entry{
		{"opencl", openOpenCL},
		{"cuda", notBuilt},
		{"metal", notBuilt},
	}
}

func openOpenCL(cfg *config, device string, cpu kernels.Backend) (kernels.Backend, error) {
	opts := []opencl.Option{opencl.WithCPU(cpu), opencl.WithLogger(cfg.log)}
	if device != "" {
		if i, err := strconv.Atoi(device); err == nil {
			opts = append(opts, opencl.WithDevice(i))
		} else {
			opts = append(opts, opencl.WithDeviceName(device))
		}
	}
	return opencl.New(opts...)
}

func notBuilt(*config, string, kernels.Backend) (kernels.Backend, error) { return nil, ErrNotBuilt }

// Open starts the backend called name (see Names) and says why it is the one
// running. The caller closes the backend.
func Open(name string, opts ...Option) (kernels.Backend, Choice, error) {
	cfg := config{log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, Choice{}, err
		}
	}
	choice := Choice{Asked: name}
	kind, device, _ := strings.Cut(name, ":")
	if kind != "auto" && kind != "cpu" && find(kind) == nil {
		return nil, choice, fmt.Errorf("%w %q: want one of %s", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	if device != "" && (kind == "auto" || kind == "cpu") {
		return nil, choice, fmt.Errorf("backend %q: only a device backend takes a device", name)
	}
	var copts []kernels.Option
	if cfg.threads > 0 {
		copts = append(copts, kernels.WithThreads(cfg.threads))
	}
	cpu, err := kernels.NewCPU(append(copts, kernels.WithLogger(cfg.log))...)
	if err != nil {
		return nil, choice, fmt.Errorf("start the CPU backend: %w", err)
	}
	switch kind {
	case "cpu":
		choice.Kind, choice.Reason = "cpu", "asked for"
		choice.Tried = []Attempt{{Kind: "cpu", Name: cpu.Name()}}
		return cpu, choice, nil
	case "auto":
		return auto(&cfg, cpu, choice)
	}
	be, err := find(kind).open(&cfg, device, cpu)
	if err != nil {
		cpu.Close()
		return nil, choice, fmt.Errorf("backend %s: %w", name, err)
	}
	choice.Kind, choice.Reason = kind, "asked for"
	choice.Tried = []Attempt{{Kind: kind, Name: be.Name()}}
	return &withCPU{be, cpu}, choice, nil
}

func find(kind string) *entry {
	for _, e := range registry() {
		if e.kind == kind {
			return &e
		}
	}
	return nil
}

// auto starts every registered backend, times each that starts against the
// CPU, and keeps the fastest.
func auto(cfg *config, cpu kernels.Backend, choice Choice) (kernels.Backend, Choice, error) {
	probe, err := newProbe()
	if err != nil {
		cpu.Close()
		return nil, choice, err
	}
	best, bestKind := kernels.Backend(cpu), "cpu"
	bestTime, err := probe.time(cpu)
	if err != nil {
		cpu.Close()
		return nil, choice, fmt.Errorf("time the CPU backend: %w", err)
	}
	choice.Tried = append(choice.Tried, Attempt{Kind: "cpu", Name: cpu.Name(), MatVec: bestTime})
	for _, e := range registry() {
		be, err := e.open(cfg, "", cpu)
		if err != nil {
			choice.Tried = append(choice.Tried, Attempt{Kind: e.kind, Err: err})
			continue
		}
		d, err := probe.time(be)
		if err != nil {
			be.Close()
			choice.Tried = append(choice.Tried, Attempt{Kind: e.kind, Name: be.Name(), Err: err})
			continue
		}
		choice.Tried = append(choice.Tried, Attempt{Kind: e.kind, Name: be.Name(), MatVec: d})
		if d < bestTime {
			if best != cpu {
				best.Close()
			}
			best, bestKind, bestTime = be, e.kind, d
		} else {
			be.Close()
		}
	}
	choice.Kind = bestKind
	choice.Reason = fmt.Sprintf("fastest at a %d×%d %s matrix-vector product: %s in %v",
		probeRows, probeCols, probeType, best.Name(), bestTime.Round(time.Microsecond))
	if best == cpu {
		return cpu, choice, nil
	}
	return &withCPU{best, cpu}, choice, nil
}

// withCPU closes the CPU backend a device backend falls back on along with it.
type withCPU struct {
	kernels.Backend
	cpu kernels.Backend
}

func (w *withCPU) Close() error { return errors.Join(w.Backend.Close(), w.cpu.Close()) }

// The probe: one decode step's worth of a 4096-wide model's largest product
// would take too long to upload at start on a slow device; 2048×2048 Q8_0
// (4.25 MiB) is large enough to leave the caches of a CPU and to show a
// device's per-call copies and launch latency, and small enough to time in
// milliseconds.
const (
	probeRows, probeCols = 2048, 2048
	probeType            = kernels.Q8_0
	probeRuns            = 5
)

type probe struct {
	data   []byte
	x, dst []float32
	want   []float32 // the CPU's answer, once timed
}

func newProbe() (*probe, error) {
	w := make([]float32, probeRows*probeCols)
	for i := range w {
		w[i] = float32(i%13-6) / 8
	}
	rb, err := probeType.RowBytes(int64(len(w)))
	if err != nil {
		return nil, err
	}
	p := &probe{data: make([]byte, rb), x: make([]float32, probeCols), dst: make([]float32, probeRows)}
	if err := kernels.Quantize(p.data, probeType, w); err != nil {
		return nil, err
	}
	for i := range p.x {
		p.x[i] = float32(i%7-3) / 4
	}
	return p, nil
}

// time is the best of a few products on be, after one untimed (uploads, first
// launches and caches are not what a decode step pays). The first backend
// timed (the CPU) sets the answer the others must give: a driver that
// computes garbage fast must not win.
func (p *probe) time(be kernels.Backend) (time.Duration, error) {
	m, err := be.NewMatrix(probeType, probeRows, probeCols, p.data)
	if err != nil {
		return 0, err
	}
	be.MatMul(p.dst, p.x, 1, m)
	best := time.Duration(1<<63 - 1)
	for range probeRuns {
		start := time.Now()
		be.MatMul(p.dst, p.x, 1, m)
		best = min(best, time.Since(start))
	}
	if f, ok := be.(interface{ Err() error }); ok && f.Err() != nil {
		return 0, f.Err() // the device failed and its CPU fallback answered
	}
	if p.want == nil {
		p.want = append([]float32(nil), p.dst...)
		return best, nil
	}
	for i, v := range p.want {
		// The CPU rounds x to 8 bits a block: 2% of the largest output
		// is far above that and far below a wrong answer.
		if d := p.dst[i] - v; d > 0.02*p.scale() || -d > 0.02*p.scale() || d != d {
			return 0, fmt.Errorf("wrong answer: output %d is %v, the CPU's %v", i, p.dst[i], v)
		}
	}
	return best, nil
}

// scale is the largest magnitude of the CPU's answer, at least 1.
func (p *probe) scale() float32 {
	s := float32(1)
	for _, v := range p.want {
		s = max(s, v, -v)
	}
	return s
}
