package model

import (
	"fmt"
	"math"
)

// Config holds the hyperparameters of a LLaMA-family transformer, whatever file it
// came from. It is the part of the model the manifest (and so the CID) commits to
// besides the tensors.
type Config struct {
	// Arch is the architecture as GGUF names it: "llama" (also Mistral, Mixtral,
	// TinyLlama) or "qwen2".
	Arch      string
	VocabSize int
	Dim       int // embedding width
	Layers    int
	Heads     int
	KVHeads   int
	HeadDim   int
	FFN       int // hidden width of the feed-forward block (of each expert, for MoE)
	NormEps   float32
	// ContextLength is the context the model was trained for.
	ContextLength int

	RopeBase float32
	RopeDim  int // number of dimensions of each head that are rotated
	// RopeNeox pairs dimension j with j+RopeDim/2 instead of 2j with 2j+1.
	RopeNeox    bool
	RopeScaling RopeScaling

	Experts     int // 0 for a dense model
	ExpertsUsed int // experts each token is routed to (top-k)
}

// RopeScaling stretches the rotary frequencies for contexts longer than training.
type RopeScaling struct {
	// Type is "" (none), "linear" or "llama3".
	Type   string
	Factor float32
	// OrigContext, LowFreqFactor and HighFreqFactor parameterise "llama3" scaling.
	OrigContext    int
	LowFreqFactor  float32
	HighFreqFactor float32
}

// Limits that no real model reaches; anything beyond is a corrupt or hostile file.
const (
	maxDim    = 1 << 16
	maxLayers = 1024
	maxHeads  = 1024
	maxVocab  = 1 << 22
	maxFFN    = 1 << 18
)

// Validate checks the hyperparameters are consistent and within sane limits.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Dim <= 0 || c.Dim > maxDim:
		return bad("embedding length %d out of range", c.Dim)
	case c.Layers <= 0 || c.Layers > maxLayers:
		return bad("block count %d out of range", c.Layers)
	case c.Heads <= 0 || c.Heads > maxHeads:
		return bad("head count %d out of range", c.Heads)
	case c.KVHeads <= 0 || c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0:
		return bad("KV head count %d does not divide head count %d", c.KVHeads, c.Heads)
	case c.HeadDim <= 0 || c.HeadDim > maxDim || c.HeadDim%2 != 0:
		return bad("head dimension %d out of range", c.HeadDim)
	case c.FFN <= 0 || c.FFN > maxFFN:
		return bad("feed-forward length %d out of range", c.FFN)
	case c.VocabSize <= 0 || c.VocabSize > maxVocab:
		return bad("vocabulary size %d out of range", c.VocabSize)
	case c.RopeDim <= 0 || c.RopeDim > c.HeadDim || c.RopeDim%2 != 0:
		return bad("rope dimension %d out of range for head dimension %d", c.RopeDim, c.HeadDim)
	case !(c.RopeBase > 0) || math.IsInf(float64(c.RopeBase), 0):
		return bad("rope base %v out of range", c.RopeBase)
	case !(c.NormEps > 0) || c.NormEps > 1:
		return bad("norm epsilon %v out of range", c.NormEps)
	case c.Experts < 0 || c.Experts > 256:
		return bad("expert count %d out of range", c.Experts)
	case c.Experts > 0 && (c.ExpertsUsed <= 0 || c.ExpertsUsed > c.Experts):
		return bad("experts used %d out of range for %d experts", c.ExpertsUsed, c.Experts)
	case c.RopeScaling.Type != "" && c.RopeScaling.Type != "linear" && c.RopeScaling.Type != "llama3":
		return bad("rope scaling %q is not supported", c.RopeScaling.Type)
	case c.RopeScaling.Type != "" && !(c.RopeScaling.Factor > 0):
		return bad("rope scaling factor %v out of range", c.RopeScaling.Factor)
	}
	return nil
}

// configFromGGUF reads the hyperparameters from GGUF metadata, filling in what
// llama.cpp defaults when a key is absent (head dimension, rope dimension…).
func configFromGGUF(md Metadata, m *Model) (Config, error) {
	arch, _ := md.String("general.architecture")
	var c Config
	switch arch {
	case "llama", "mistral":
		c.Arch = "llama"
	case "qwen2":
		c.Arch = "qwen2"
		c.RopeNeox = true
	case "":
		return c, fmt.Errorf("%w: general.architecture is missing", ErrFormat)
	default:
		return c, fmt.Errorf("%w: architecture %q is not supported (want llama, mistral or qwen2)", ErrFormat, arch)
	}
	p := arch + "."
	var missing []string
	need := func(key string) int {
		v, ok := md.Int(p + key)
		if !ok {
			missing = append(missing, p+key)
		}
		return v
	}
	c.Dim = need("embedding_length")
	c.Layers = need("block_count")
	c.FFN = need("feed_forward_length")
	c.Heads = need("attention.head_count")
	if len(missing) > 0 {
		return c, fmt.Errorf("%w: metadata %v missing", ErrFormat, missing)
	}
	if c.Heads == 0 {
		return c, fmt.Errorf("%w: head count is 0", ErrFormat)
	}
	c.KVHeads = c.Heads
	if v, ok := md.Int(p + "attention.head_count_kv"); ok {
		c.KVHeads = v
	}
	c.ContextLength, _ = md.Int(p + "context_length")
	c.HeadDim = c.Dim / c.Heads
	if v, ok := md.Int(p + "attention.key_length"); ok {
		c.HeadDim = v
	}
	c.RopeDim = c.HeadDim
	if v, ok := md.Int(p + "rope.dimension_count"); ok {
		c.RopeDim = v
	}
	c.RopeBase = 10000
	if v, ok := md.Float(p + "rope.freq_base"); ok {
		c.RopeBase = float32(v)
	}
	c.NormEps = 1e-5
	if v, ok := md.Float(p + "attention.layer_norm_rms_epsilon"); ok {
		c.NormEps = float32(v)
	}
	if t, ok := md.String(p + "rope.scaling.type"); ok && t != "none" {
		c.RopeScaling.Type = t
		f, _ := md.Float(p + "rope.scaling.factor")
		c.RopeScaling.Factor = float32(f)
		c.RopeScaling.OrigContext, _ = md.Int(p + "rope.scaling.original_context_length")
		lo, _ := md.Float(p + "rope.scaling.low_freq_factor")
		hi, _ := md.Float(p + "rope.scaling.high_freq_factor")
		c.RopeScaling.LowFreqFactor, c.RopeScaling.HighFreqFactor = float32(lo), float32(hi)
		if t == "llama3" {
			// Llama 3.1's published values, which transformers also assumes.
			if c.RopeScaling.OrigContext == 0 {
				c.RopeScaling.OrigContext = 8192
			}
			if lo == 0 {
				c.RopeScaling.LowFreqFactor = 1
			}
			if hi == 0 {
				c.RopeScaling.HighFreqFactor = 4
			}
		}
	} else if f, ok := md.Float(p + "rope.scale_linear"); ok && f != 1 {
		// Files written before rope.scaling.* existed.
		c.RopeScaling = RopeScaling{Type: "linear", Factor: float32(f)}
	}
	c.Experts, _ = md.Int(p + "expert_count")
	c.ExpertsUsed, _ = md.Int(p + "expert_used_count")
	if t, ok := m.Tensor("token_embd.weight"); ok && len(t.Shape) == 2 {
		c.VocabSize = int(t.Shape[1])
	}
	if v, ok := md.Int(p + "vocab_size"); ok && c.VocabSize == 0 {
		c.VocabSize = v
	}
	if c.Dim > 0 && c.Heads > 0 && c.Dim%c.Heads != 0 && c.HeadDim == c.Dim/c.Heads {
		return c, fmt.Errorf("%w: embedding length %d is not a multiple of head count %d", ErrFormat, c.Dim, c.Heads)
	}
	return c, c.Validate()
}
