package hardware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// config is what the options set.
type config struct {
	quick        bool
	threads      int
	progress     func(Progress)
	log          *slog.Logger
	tiers        []ledger.Tier
	now          func() time.Time
	accelerators []Accelerator
}

// Option configures Measure and LoadOrMeasure.
type Option func(*config) error

// WithQuick selects the quick benchmark: small shapes and short runs, a few
// hundred milliseconds in all, for tests. Its figures have the right order of
// magnitude but are not a claim: the layer latency is extrapolated from a small
// layer and the bandwidth arrays fit in cache. LoadOrMeasure never reuses a
// quick claim for a full one.
func WithQuick(on bool) Option {
	return func(c *config) error { c.quick = on; return nil }
}

// WithThreads sets how many goroutines the bandwidth measurement runs on; the
// default, runtime.NumCPU(), suits a backend that uses every core. It should be
// the backend's thread count, so that the figure is what the backend can draw.
func WithThreads(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("hardware: thread count %d out of range [1, 1024]", n)
		}
		c.threads = n
		return nil
	}
}

// WithProgress has fn called as the benchmark advances, from the goroutine
// running it, at most every few milliseconds.
func WithProgress(fn func(Progress)) Option {
	return func(c *config) error { c.progress = fn; return nil }
}

// WithLogger sets where LoadOrMeasure reports what it reused, measured and
// stored.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("hardware: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithTiers rates claims with the multipliers of tiers (the network file's tier
// table) instead of those of ledger.DefaultGenesis.
func WithTiers(tiers []ledger.Tier) Option {
	return func(c *config) error {
		if _, err := NewScale(DefaultAnchors(), tiers); err != nil {
			return err
		}
		c.tiers = append([]ledger.Tier(nil), tiers...)
		return nil
	}
}

// WithClock sets the clock that dates claims.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("hardware: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithAccelerators adds the backend's devices to the device description, so
// that a GPU swap changes the fingerprint.
func WithAccelerators(a ...Accelerator) Option {
	return func(c *config) error { c.accelerators = append(c.accelerators, a...); return nil }
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		threads: runtime.NumCPU(),
		log:     slog.New(slog.DiscardHandler),
		tiers:   ledger.DefaultGenesis().Tiers,
		now:     time.Now,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Progress is how far a benchmark has come.
type Progress struct {
	// Step names the current step: "matmul", "bandwidth", "synthesize",
	// "prefill" or "decode".
	Step string
	// Index is the step's position, 1 to Steps.
	Index, Steps int
	// Done is the share of the whole benchmark done, in [0, 1].
	Done float64
}

// BandwidthMeter is implemented by backends whose weights live in memory of
// their own (a GPU's): the bandwidth that matters is that memory's, which the
// host-side triad cannot see. It returns bytes per second, measured on arrays
// of about arrayBytes each.
type BandwidthMeter interface {
	MeasureBandwidth(arrayBytes int) float64
}

// Measurement is the result of a benchmark run.
type Measurement struct {
	Figures
	// Backend is the name of the backend measured.
	Backend string
	// Quick marks the quick benchmark's figures (WithQuick).
	Quick bool
	// Took is how long the run took.
	Took time.Duration
}

// shape is what a benchmark run computes and for how long.
type shape struct {
	// The matrix product: an mmRows×mmCols f16 weight matrix times mmTokens rows.
	mmRows, mmCols, mmTokens int
	mmBudget                 time.Duration
	// Bandwidth: the triad's array size and how many runs of it to take the best of.
	bwBytes, bwRuns int
	// The layer: a Llama layer decoding one token after ctx positions.
	dim, heads, ffn, ctx int
	decodeBudget         time.Duration
}

// The standard shapes. The product is a prefill-sized one (a 128-token chunk of
// prompt through a 4096-wide projection) in f16, the type whose peak vendors
// publish for every part. The layer is one of Llama-2-7B (dim 4096, 32 heads
// without grouping, FFN 11008) in q8_0, the common 8-bit format volunteers serve,
// decoding with 512 positions cached. Each timed part runs for a fixed budget and
// the best run counts: the benchmark measures the device, not the other processes
// on it, and what clients later observe caps the claim anyway (DESIGN.md §6).
// On this repository's reference VM (2 Sapphire Rapids cores) the full run takes
// about 10 s.
func standardShape() shape {
	return shape{
		mmRows: 4096, mmCols: 4096, mmTokens: 128, mmBudget: 2 * time.Second,
		bwBytes: kernels.DefaultBandwidthBytes, bwRuns: 2,
		dim: 4096, heads: 32, ffn: 11008, ctx: 512, decodeBudget: 3 * time.Second,
	}
}

func quickShape() shape {
	return shape{
		mmRows: 1024, mmCols: 1024, mmTokens: 32, mmBudget: 50 * time.Millisecond,
		bwBytes: 8 << 20, bwRuns: 1,
		dim: 512, heads: 8, ffn: 1408, ctx: 64, decodeBudget: 50 * time.Millisecond,
	}
}

// layerWeightBytes is the size of one dense layer's q8_0 matrices: four dim×dim
// attention projections and three dim×ffn feed-forward ones.
func (s shape) layerWeightBytes() int64 {
	row := func(cols int) int64 { b, _ := kernels.Q8_0.RowBytes(int64(cols)); return b }
	return int64(4*s.dim+2*s.ffn)*row(s.dim) + int64(s.dim)*row(s.ffn)
}

// numSteps is the number of steps of a run.
const numSteps = 5

// steps are the names of a run's steps and the share of its time each is
// expected to take, for progress.
func steps() (names [numSteps]string, weights [numSteps]float64) {
	return [...]string{"matmul", "bandwidth", "synthesize", "prefill", "decode"},
		[...]float64{0.2, 0.15, 0.15, 0.15, 0.35}
}

// progress reports through cfg.progress, throttled.
type progress struct {
	fn      func(Progress)
	step    int
	last    time.Time
	names   [numSteps]string
	weights [numSteps]float64
}

func (p *progress) at(step int, frac float64) {
	if p.fn == nil {
		return
	}
	now := time.Now()
	if step == p.step && frac < 1 && now.Sub(p.last) < 20*time.Millisecond {
		return
	}
	p.step, p.last = step, now
	done := 0.0
	for i := range step {
		done += p.weights[i]
	}
	done += p.weights[step] * min(max(frac, 0), 1)
	p.fn(Progress{Step: p.names[step], Index: step + 1, Steps: numSteps, Done: min(done, 1)})
}

// Measure benchmarks be: matrix-multiply throughput, memory bandwidth and the
// latency of one transformer layer (see Figures for the shapes). It allocates
// about a gigabyte (the bandwidth arrays, then the layer's weights) and gives it
// back to the OS before returning. It stops early, with ctx's error, when ctx is
// done.
func Measure(ctx context.Context, be kernels.Backend, opts ...Option) (Measurement, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return Measurement{}, err
	}
	return measure(ctx, be, cfg)
}

func measure(ctx context.Context, be kernels.Backend, cfg *config) (Measurement, error) {
	if err := ctx.Err(); err != nil {
		return Measurement{}, err
	}
	start := time.Now()
	sh := standardShape()
	if cfg.quick {
		sh = quickShape()
	}
	defer debug.FreeOSMemory()
	p := &progress{fn: cfg.progress, step: -1}
	p.names, p.weights = steps()
	m := Measurement{Backend: be.Name(), Quick: cfg.quick}
	var err error
	if m.MatmulGFLOPS, err = measureMatmul(ctx, be, sh, p); err != nil {
		return Measurement{}, fmt.Errorf("benchmark matmul: %w", err)
	}
	if m.BandwidthGBps, err = measureBandwidth(ctx, be, sh, cfg.threads, p); err != nil {
		return Measurement{}, fmt.Errorf("benchmark bandwidth: %w", err)
	}
	if m.LayerLatency, err = measureLayer(ctx, be, sh, p); err != nil {
		return Measurement{}, fmt.Errorf("benchmark layer: %w", err)
	}
	if cfg.quick {
		// Scale the small layer's time to the standard layer's bytes: decode is
		// bandwidth-bound, so this lands near what the full run would measure.
		ratio := float64(standardShape().layerWeightBytes()) / float64(sh.layerWeightBytes())
		m.LayerLatency = time.Duration(float64(m.LayerLatency) * ratio)
	}
	m.Took = time.Since(start)
	return m, nil
}

// timeBest runs fn until budget has passed and at least three runs are done, and
// returns the fastest run.
func timeBest(ctx context.Context, budget time.Duration, fn func() error, report func(float64)) (time.Duration, error) {
	best := time.Duration(math.MaxInt64)
	start := time.Now()
	for runs := 0; runs < 3 || time.Since(start) < budget; runs++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		best = min(best, max(time.Since(t0), time.Nanosecond))
		report(float64(time.Since(start)) / float64(budget))
	}
	return best, nil
}

// measureMatmul times the backend's MatMul of an f16 weight matrix by a batch of
// rows and returns GFLOP/s (two per multiply-add).
func measureMatmul(ctx context.Context, be kernels.Backend, sh shape, p *progress) (float64, error) {
	p.at(0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 2*sh.mmRows*sh.mmCols)
	for i := 0; i < len(data); i += 2 {
		h := kernels.F32ToF16((rng.Float32() - 0.5) / 32)
		data[i], data[i+1] = byte(h), byte(h>>8)
	}
	w, err := be.NewMatrix(kernels.F16, sh.mmRows, sh.mmCols, data)
	if err != nil {
		return 0, err
	}
	x := make([]float32, sh.mmTokens*sh.mmCols)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	dst := make([]float32, sh.mmTokens*sh.mmRows)
	be.MatMul(dst, x, sh.mmTokens, w) // warm-up: workers awake, scratch sized
	best, err := timeBest(ctx, sh.mmBudget, func() error {
		be.MatMul(dst, x, sh.mmTokens, w)
		return nil
	}, func(f float64) { p.at(0, f) })
	if err != nil {
		return 0, err
	}
	return 2 * float64(sh.mmRows) * float64(sh.mmCols) * float64(sh.mmTokens) / best.Seconds() / 1e9, nil
}

// measureBandwidth returns the best triad bandwidth of sh.bwRuns runs, in GB/s:
// the backend's own when it is a BandwidthMeter, host memory's otherwise.
func measureBandwidth(ctx context.Context, be kernels.Backend, sh shape, threads int, p *progress) (float64, error) {
	best := 0.0
	for r := range sh.bwRuns {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		p.at(1, float64(r)/float64(sh.bwRuns))
		var bps float64
		if bm, ok := be.(BandwidthMeter); ok {
			bps = bm.MeasureBandwidth(sh.bwBytes)
		} else {
			bps = kernels.MeasureBandwidth(threads, sh.bwBytes)
		}
		best = max(best, bps)
	}
	p.at(1, 1)
	if !(best > 0) || math.IsInf(best, 0) {
		return 0, fmt.Errorf("measured %v bytes/s", best)
	}
	return best / 1e9, nil
}

// layerVocab is the synthesized layer's vocabulary: the engine wants one, the
// benchmark never embeds a token, so it is tiny.
const layerVocab = 32

// measureLayer synthesizes a one-layer model of sh's shape in memory, fills sh.ctx
// positions of its KV cache, and times decoding one more token through the
// layer with pipeline/llama, the engine the node serves with.
func measureLayer(ctx context.Context, be kernels.Backend, sh shape, p *progress) (time.Duration, error) {
	p.at(2, 0)
	var buf bytes.Buffer
	row := func(cols int) int { b, _ := kernels.Q8_0.RowBytes(int64(cols)); return int(b) }
	buf.Grow(int(sh.layerWeightBytes()) + 2*layerVocab*row(sh.dim) + 1<<20)
	err := model.Synthesize(&ctxWriter{ctx: ctx, w: &buf}, model.SynthOptions{
		Dim: sh.dim, Layers: 1, Heads: sh.heads, FFN: sh.ffn, Vocab: layerVocab,
		DType: kernels.Q8_0, Seed: 1, ContextLength: sh.ctx + 1,
		Progress: func(written, total int64) { p.at(2, float64(written)/float64(total)) },
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, err
	}
	m, err := model.FromGGUF(buf.Bytes())
	if err != nil {
		return 0, err
	}
	st, err := llama.NewStage(m, be)
	if err != nil {
		return 0, err
	}
	se, err := st.NewSession(sh.ctx + 1)
	if err != nil {
		return 0, err
	}
	x := make([]float32, sh.ctx*sh.dim)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37)) * 0.5
	}
	const chunk = 128
	for off := 0; off < sh.ctx; off += chunk {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		p.at(3, float64(off)/float64(sh.ctx))
		n := min(chunk, sh.ctx-off)
		if err := se.Forward(x[off*sh.dim : (off+n)*sh.dim]); err != nil {
			return 0, err
		}
	}
	p.at(3, 1)
	in := append([]float32(nil), x[:sh.dim]...)
	tok := make([]float32, sh.dim)
	step := func() error {
		if err := se.Rewind(sh.ctx); err != nil {
			return err
		}
		copy(tok, in) // Forward works in place
		return se.Forward(tok)
	}
	if err := step(); err != nil { // warm-up
		return 0, err
	}
	best, err := timeBest(ctx, sh.decodeBudget, step, func(f float64) { p.at(4, f) })
	if err != nil {
		return 0, err
	}
	p.at(4, 1)
	return best, nil
}

// ctxWriter fails writes once ctx is done, which stops a synthesis in progress.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}
