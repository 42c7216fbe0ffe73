package model

import (
	"errors"
	"fmt"
	"os"

	"github.com/imece/imece/kernels"
)

// Tensor is one named array of weights. Shape is in GGML order: Shape[0] is the
// innermost (contiguous) dimension, so a weight matrix with r rows of c elements has
// Shape [c, r]. Data holds the stored bytes, usually a slice of a memory-mapped file.
type Tensor struct {
	Name  string
	Shape []int64
	DType kernels.DType
	Data  []byte
}

// Elements is the number of elements in the tensor.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Rows and Cols view the tensor as a matrix of Shape[0]-element rows.
func (t *Tensor) Rows() int { return int(t.Elements() / t.Shape[0]) }

// Cols is the length of one row (Shape[0]).
func (t *Tensor) Cols() int { return int(t.Shape[0]) }

// Model is a transformer checkpoint loaded from disk: its hyperparameters, its raw
// metadata and its tensors, named as GGUF names them whatever the file format, so
// the engine reads one vocabulary of names.
type Model struct {
	// Format is "gguf" or "safetensors".
	Format string
	// Path is the file or directory the model was loaded from.
	Path   string
	Config Config
	Meta   Metadata
	// Tensors are in file order (the order the manifest and CID follow).
	Tensors []Tensor
	// TokenizerJSON is the content of a HuggingFace tokenizer.json, when the model
	// came with one; GGUF models carry their vocabulary in Meta instead.
	TokenizerJSON []byte
	// TokenizerConfigJSON is the content of tokenizer_config.json (special tokens,
	// chat template), when a HuggingFace model came with one.
	TokenizerConfigJSON []byte

	byName map[string]int
	ids    *identity // manifest and CIDs, computed on first use
	close  func() error
}

// Open loads a model: a GGUF file, or a HuggingFace directory (config.json with
// model.safetensors or a sharded index). Weights are memory-mapped, not read.
func Open(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	if st.IsDir() {
		return openHF(path)
	}
	return OpenGGUF(path)
}

// OpenGGUF loads a GGUF file.
func OpenGGUF(path string) (*Model, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	m, err := FromGGUF(data)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	m.close = unmap
	return m, nil
}

// ReadGGUFMetadata returns the metadata of a GGUF file without loading it as a
// model, so it works on vocabulary-only files too (llama.cpp's ggml-vocab-*.gguf):
// what `imece model synth --vocab-from` needs. The values are copies; nothing
// refers to the file afterwards.
func ReadGGUFMetadata(path string) (Metadata, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return Metadata{}, fmt.Errorf("read metadata: %w", err)
	}
	defer unmap()
	g, err := ParseGGUF(data)
	if err != nil {
		return Metadata{}, fmt.Errorf("%s: %w", path, err)
	}
	return g.Meta, nil
}

// FromGGUF builds a model from the bytes of a GGUF file, which must stay valid and
// unchanged while the model is in use.
func FromGGUF(data []byte) (*Model, error) {
	g, err := ParseGGUF(data)
	if err != nil {
		return nil, err
	}
	m := &Model{Format: "gguf", Meta: g.Meta, Tensors: g.Tensors}
	m.index()
	cfg, err := configFromGGUF(g.Meta, m)
	if err != nil {
		return nil, err
	}
	m.Config = cfg
	if err := m.finish(); err != nil {
		return nil, err
	}
	return m, nil
}

// finish completes a loaded model whatever its format: it checks the tensors against
// the configuration and prepares the lazily computed identity.
func (m *Model) finish() error {
	if err := m.check(); err != nil {
		return err
	}
	m.ids = &identity{}
	return nil
}

func (m *Model) index() {
	m.byName = make(map[string]int, len(m.Tensors))
	for i, t := range m.Tensors {
		m.byName[t.Name] = i
	}
}

// Tensor returns the tensor called name.
func (m *Model) Tensor(name string) (*Tensor, bool) {
	i, ok := m.byName[name]
	if !ok {
		return nil, false
	}
	return &m.Tensors[i], true
}

// Size is the total number of bytes of tensor data.
func (m *Model) Size() int64 {
	var n int64
	for _, t := range m.Tensors {
		n += int64(len(t.Data))
	}
	return n
}

// Params is the total number of weights.
func (m *Model) Params() int64 {
	var n int64
	for _, t := range m.Tensors {
		n += t.Elements()
	}
	return n
}

// Close unmaps the model's files. Tensors must not be used afterwards.
func (m *Model) Close() error {
	if m.close == nil {
		return nil
	}
	err := m.close()
	m.close = nil
	return err
}

// LayerTensor names the tensor of layer i, as in blk.<i>.<suffix>.
func LayerTensor(i int, suffix string) string { return fmt.Sprintf("blk.%d.%s", i, suffix) }

// check verifies that every tensor the engine needs is present with the shape the
// configuration implies, so a broken file fails at load with the tensor's name rather
// than mid-inference.
func (m *Model) check() error {
	c := m.Config
	var errs []error
	want := func(name string, shape ...int) {
		t, ok := m.Tensor(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: tensor %s is missing", ErrFormat, name))
			return
		}
		if len(t.Shape) != len(shape) {
			errs = append(errs, fmt.Errorf("%w: tensor %s has shape %v, want %v", ErrFormat, name, t.Shape, shape))
			return
		}
		for i := range shape {
			if t.Shape[i] != int64(shape[i]) {
				errs = append(errs, fmt.Errorf("%w: tensor %s has shape %v, want %v", ErrFormat, name, t.Shape, shape))
				return
			}
		}
	}
	optional := func(name string, shape ...int) {
		if _, ok := m.Tensor(name); ok {
			want(name, shape...)
		}
	}
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	want("token_embd.weight", c.Dim, c.VocabSize)
	want("output_norm.weight", c.Dim)
	optional("output.weight", c.Dim, c.VocabSize)
	optional("rope_freqs.weight", c.RopeDim/2)
	for i := 0; i < c.Layers; i++ {
		L := func(s string) string { return LayerTensor(i, s) }
		want(L("attn_norm.weight"), c.Dim)
		want(L("attn_q.weight"), c.Dim, qDim)
		want(L("attn_k.weight"), c.Dim, kvDim)
		want(L("attn_v.weight"), c.Dim, kvDim)
		want(L("attn_output.weight"), qDim, c.Dim)
		optional(L("attn_q.bias"), qDim)
		optional(L("attn_k.bias"), kvDim)
		optional(L("attn_v.bias"), kvDim)
		want(L("ffn_norm.weight"), c.Dim)
		if c.Experts == 0 {
			want(L("ffn_gate.weight"), c.Dim, c.FFN)
			want(L("ffn_up.weight"), c.Dim, c.FFN)
			want(L("ffn_down.weight"), c.FFN, c.Dim)
			continue
		}
		want(L("ffn_gate_inp.weight"), c.Dim, c.Experts)
		if _, split := m.Tensor(L("ffn_gate.0.weight")); split {
			for e := 0; e < c.Experts; e++ {
				want(L(fmt.Sprintf("ffn_gate.%d.weight", e)), c.Dim, c.FFN)
				want(L(fmt.Sprintf("ffn_up.%d.weight", e)), c.Dim, c.FFN)
				want(L(fmt.Sprintf("ffn_down.%d.weight", e)), c.FFN, c.Dim)
			}
			continue
		}
		want(L("ffn_gate_exps.weight"), c.Dim, c.FFN, c.Experts)
		want(L("ffn_up_exps.weight"), c.Dim, c.FFN, c.Experts)
		want(L("ffn_down_exps.weight"), c.FFN, c.Dim, c.Experts)
	}
	return errors.Join(errs...)
}
