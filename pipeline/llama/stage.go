package llama

import (
	"errors"
	"fmt"
	"math"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/model"
)

// ErrRange is returned for a layer range outside the model.
var ErrRange = errors.New("invalid layer range")

// Stage is the weights of a contiguous range of a model's layers, ready to compute.
// It is immutable after construction and shared by all of its sessions.
type Stage struct {
	cfg         model.Config
	first, last int
	be          kernels.Backend

	embd    kernels.Matrix // first stage only
	outNorm []float32      // last stage only
	output  kernels.Matrix // last stage only

	layers  []layer
	invFreq []float32
}

type layer struct {
	attnNorm       []float32
	wq, wk, wv, wo kernels.Matrix
	bq, bk, bv     []float32 // Qwen2 attention biases; nil when absent
	ffnNorm        []float32
	gate, up, down kernels.Matrix // dense feed-forward
	router         kernels.Matrix // mixture of experts: nil for dense layers
	experts        []expert
}

type expert struct{ gate, up, down kernels.Matrix }

type stageConfig struct {
	first, last int
	ranged      bool
}

// Option configures NewStage.
type Option func(*stageConfig) error

// WithLayers restricts the stage to layers [first, last). By default a stage holds
// the whole model.
func WithLayers(first, last int) Option {
	return func(c *stageConfig) error {
		c.first, c.last, c.ranged = first, last, true
		return nil
	}
}

// NewStage prepares layers of m on be. The model's tensors must outlive the stage
// (the CPU backend computes straight from the memory-mapped file).
func NewStage(m *model.Model, be kernels.Backend, opts ...Option) (*Stage, error) {
	cfg := m.Config
	sc := stageConfig{first: 0, last: cfg.Layers}
	for _, o := range opts {
		if err := o(&sc); err != nil {
			return nil, err
		}
	}
	if sc.first < 0 || sc.last > cfg.Layers || sc.first >= sc.last {
		return nil, fmt.Errorf("%w: [%d, %d) in a model of %d layers", ErrRange, sc.first, sc.last, cfg.Layers)
	}
	s := &Stage{cfg: cfg, first: sc.first, last: sc.last, be: be}
	l := loader{m: m, be: be}
	if s.first == 0 {
		s.embd = l.matrix("token_embd.weight")
	}
	if s.last == cfg.Layers {
		s.outNorm = l.vector("output_norm.weight")
		if _, ok := m.Tensor("output.weight"); ok {
			s.output = l.matrix("output.weight")
		} else {
			// Tied embeddings: the output head is the embedding matrix.
			s.output = l.matrix("token_embd.weight")
		}
	}
	for i := s.first; i < s.last; i++ {
		s.layers = append(s.layers, l.layer(i, cfg))
	}
	if l.err != nil {
		return nil, fmt.Errorf("load layers [%d, %d): %w", s.first, s.last, l.err)
	}
	inv, err := ropeFrequencies(cfg, m)
	if err != nil {
		return nil, err
	}
	s.invFreq = inv
	return s, nil
}

// Config is the model's configuration.
func (s *Stage) Config() model.Config { return s.cfg }

// First is the first layer of the stage.
func (s *Stage) First() int { return s.first }

// Last is one past the last layer of the stage.
func (s *Stage) Last() int { return s.last }

// IsFirst reports whether the stage takes tokens (holds the embedding).
func (s *Stage) IsFirst() bool { return s.first == 0 }

// IsLast reports whether the stage produces logits (holds the output head).
func (s *Stage) IsLast() bool { return s.last == s.cfg.Layers }

// Backend is the backend the stage computes on.
func (s *Stage) Backend() kernels.Backend { return s.be }

// loader turns tensors into backend matrices and f32 vectors, keeping the first error
// so that construction reads straight through.
type loader struct {
	m   *model.Model
	be  kernels.Backend
	err error
}

func (l *loader) tensor(name string) *model.Tensor {
	if l.err != nil {
		return nil
	}
	t, ok := l.m.Tensor(name)
	if !ok {
		l.err = fmt.Errorf("tensor %s is missing", name)
		return nil
	}
	return t
}

func (l *loader) matrix(name string) kernels.Matrix {
	t := l.tensor(name)
	if t == nil {
		return nil
	}
	return l.rows(name, t, 0, t.Rows())
}

// rows makes a matrix of rows [lo, hi) of t: one expert of a 3-D expert tensor.
func (l *loader) rows(name string, t *model.Tensor, lo, hi int) kernels.Matrix {
	rowBytes := len(t.Data) / t.Rows()
	w, err := l.be.NewMatrix(t.DType, hi-lo, t.Cols(), t.Data[lo*rowBytes:hi*rowBytes])
	if err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	return w
}

func (l *loader) vector(name string) []float32 {
	t := l.tensor(name)
	if t == nil {
		return nil
	}
	v := make([]float32, t.Elements())
	if err := kernels.Dequantize(v, t.DType, t.Data); err != nil {
		l.err = fmt.Errorf("tensor %s: %w", name, err)
		return nil
	}
	return v
}

func (l *loader) optionalVector(name string) []float32 {
	if _, ok := l.m.Tensor(name); !ok {
		return nil
	}
	return l.vector(name)
}

func (l *loader) layer(i int, cfg model.Config) layer {
	n := func(s string) string { return model.LayerTensor(i, s) }
	ly := layer{
		attnNorm: l.vector(n("attn_norm.weight")),
		wq:       l.matrix(n("attn_q.weight")),
		wk:       l.matrix(n("attn_k.weight")),
		wv:       l.matrix(n("attn_v.weight")),
		wo:       l.matrix(n("attn_output.weight")),
		bq:       l.optionalVector(n("attn_q.bias")),
		bk:       l.optionalVector(n("attn_k.bias")),
		bv:       l.optionalVector(n("attn_v.bias")),
		ffnNorm:  l.vector(n("ffn_norm.weight")),
	}
	if cfg.Experts == 0 {
		ly.gate = l.matrix(n("ffn_gate.weight"))
		ly.up = l.matrix(n("ffn_up.weight"))
		ly.down = l.matrix(n("ffn_down.weight"))
		return ly
	}
	ly.router = l.matrix(n("ffn_gate_inp.weight"))
	ly.experts = make([]expert, cfg.Experts)
	if _, split := l.m.Tensor(n("ffn_gate.0.weight")); split {
		for e := range ly.experts {
			ly.experts[e] = expert{
				gate: l.matrix(n(fmt.Sprintf("ffn_gate.%d.weight", e))),
				up:   l.matrix(n(fmt.Sprintf("ffn_up.%d.weight", e))),
				down: l.matrix(n(fmt.Sprintf("ffn_down.%d.weight", e))),
			}
		}
		return ly
	}
	gate, up, down := l.tensor(n("ffn_gate_exps.weight")), l.tensor(n("ffn_up_exps.weight")), l.tensor(n("ffn_down_exps.weight"))
	if l.err != nil {
		return ly
	}
	for e := range ly.experts {
		ly.experts[e] = expert{
			gate: l.rows(gate.Name, gate, e*cfg.FFN, (e+1)*cfg.FFN),
			up:   l.rows(up.Name, up, e*cfg.FFN, (e+1)*cfg.FFN),
			down: l.rows(down.Name, down, e*cfg.Dim, (e+1)*cfg.Dim),
		}
	}
	return ly
}

// ropeFrequencies computes the angular frequency of each rotated dimension pair,
// folding in the model's context scaling so that backends see one table.
func ropeFrequencies(cfg model.Config, m *model.Model) ([]float32, error) {
	half := cfg.RopeDim / 2
	inv := make([]float32, half)
	sc := cfg.RopeScaling
	for j := range inv {
		f := math.Pow(float64(cfg.RopeBase), -float64(2*j)/float64(cfg.RopeDim))
		switch sc.Type {
		case "linear":
			f /= float64(sc.Factor)
		case "llama3":
			f = llama3Scale(f, sc)
		}
		inv[j] = float32(f)
	}
	// Llama 3 GGUF files carry the per-pair factors as a tensor instead.
	if t, ok := m.Tensor("rope_freqs.weight"); ok && sc.Type != "llama3" {
		ff := make([]float32, t.Elements())
		if err := kernels.Dequantize(ff, t.DType, t.Data); err != nil {
			return nil, fmt.Errorf("tensor rope_freqs.weight: %w", err)
		}
		if len(ff) != half {
			return nil, fmt.Errorf("tensor rope_freqs.weight has %d factors, want %d", len(ff), half)
		}
		for j := range inv {
			if !(ff[j] > 0) {
				return nil, fmt.Errorf("tensor rope_freqs.weight: factor %d is %v", j, ff[j])
			}
			inv[j] /= ff[j]
		}
	}
	return inv, nil
}

// llama3Scale applies Llama 3.1's frequency-dependent context extension: high
// frequencies are kept, low frequencies divided by the factor, and the band between
// interpolated smoothly.
func llama3Scale(f float64, sc model.RopeScaling) float64 {
	orig := float64(sc.OrigContext)
	if orig == 0 {
		orig = 8192
	}
	low, high := float64(sc.LowFreqFactor), float64(sc.HighFreqFactor)
	if low == 0 {
		low = 1
	}
	if high == 0 {
		high = 4
	}
	wavelen := 2 * math.Pi / f
	switch {
	case wavelen < orig/high:
		return f
	case wavelen > orig/low:
		return f / float64(sc.Factor)
	}
	smooth := (orig/wavelen - low) / (high - low)
	return (1-smooth)*f/float64(sc.Factor) + smooth*f
}
