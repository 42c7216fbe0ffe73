package model

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/imece/imece/kernels"
)

// A model's identity on the network is the CID of its manifest (DESIGN.md §2): the
// hyperparameters, a digest of the tokenizer, and for each tensor in file order its
// name, shape, type and the SHA2-256 of its bytes. Every node that loads the same
// weights computes the same manifest, so the CID names the model without anyone
// vouching for it, and a light client that fetches the manifest from a peer checks it
// against the CID it asked for.
//
// Each layer i has a layer manifest of its own, naming the model's CID, i and the
// entries of the layer's tensors (blk.i.*). Its CID is what a node serving layer i
// of model M provides in the DHT: "who serves layer 17 of M" is a provider lookup of
// LayerCID(17), which anyone holding M's manifest can compute.
//
// # Encoding, version 1
//
// Both manifests are byte strings with one encoding each; parsing and re-encoding
// gives the same bytes, which is what makes the CID well defined. All integers are
// little-endian; str is a u64 byte length followed by UTF-8 bytes (as in GGUF).
//
//	model manifest := "imece/model-manifest/1\n" config tokenizer[32] u32 count entry*count
//	config         := str arch
//	                  u32 vocab_size u32 dim u32 layers u32 heads u32 kv_heads u32 head_dim
//	                  u32 ffn u32 context_length u32 rope_dim u8 rope_neox(0|1)
//	                  f32 rope_base f32 norm_eps
//	                  str rope_scaling_type f32 rope_scaling_factor u32 rope_orig_context
//	                  f32 rope_low_freq_factor f32 rope_high_freq_factor
//	                  u32 experts u32 experts_used
//	entry          := str name u8 ndims u64 dim*ndims (innermost first, as GGUF) u32 dtype
//	                  (GGML numbering) sha256[32] (of the tensor's bytes as stored)
//	layer manifest := "imece/layer-manifest/1\n" str model_cid (binary CID) u32 layer
//	                  u32 count entry*count
//
// f32 values are their IEEE-754 bits. The CIDs are CIDv1, codec raw (0x55), multihash
// sha2-256 of these bytes.
const (
	modelManifestTag = "imece/model-manifest/1\n"
	layerManifestTag = "imece/layer-manifest/1\n"
	// maxManifest bounds a manifest received from a peer: 64 bytes and more per
	// tensor, and even models with tens of thousands of experts stay far below.
	maxManifest = 32 << 20
)

// Manifest is the canonical description of a model that its CID hashes.
type Manifest struct {
	Config Config
	// Tokenizer is the SHA2-256 of the model's vocabulary (see TokenizerDigest), so a
	// light client can check the tokenizer a peer sends it.
	Tokenizer [32]byte
	// Tensors are in file order.
	Tensors []TensorEntry
}

// TensorEntry describes one tensor in a manifest: enough to check bytes received
// from a peer and to count the FLOPs of a layer without holding its weights.
type TensorEntry struct {
	Name  string
	Shape []int64 // GGML order, innermost first
	DType kernels.DType
	// Hash is the SHA2-256 of the tensor's bytes as stored.
	Hash [32]byte
}

// LayerManifest is the manifest of one layer block: the model it belongs to, its
// index and the entries of its tensors, in model file order.
type LayerManifest struct {
	Model   cid.Cid
	Layer   int
	Tensors []TensorEntry
}

// NewManifest describes a model with the given configuration, tokenizer digest and
// tensors, hashing the tensors' bytes in parallel (one tensor per goroutine, the
// largest first; SHA2-256 of one tensor is inherently sequential).
func NewManifest(c Config, tokenizer [32]byte, tensors []Tensor) *Manifest {
	return newManifest(c, tokenizer, tensors, nil)
}

// TokenizerDigest is the SHA2-256 that a manifest commits to for a model's
// tokenizer: the hash of TokenizerBlob.
func TokenizerDigest(md Metadata, tokenizerJSON, tokenizerConfigJSON []byte) ([32]byte, error) {
	b, err := TokenizerBlob(md, tokenizerJSON, tokenizerConfigJSON)
	if err != nil {
		return [32]byte{}, fmt.Errorf("tokenizer digest: %w", err)
	}
	return sha256.Sum256(b), nil
}

// Encode returns the canonical bytes of the manifest (see the encoding above).
func (mf *Manifest) Encode() []byte {
	var e ggufEncoder
	e.buf.WriteString(modelManifestTag)
	c := mf.Config
	e.str(c.Arch)
	for _, v := range []int{c.VocabSize, c.Dim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.ContextLength, c.RopeDim} {
		e.u32(uint32(v))
	}
	e.value(c.RopeNeox)
	e.value(c.RopeBase)
	e.value(c.NormEps)
	e.str(c.RopeScaling.Type)
	e.value(c.RopeScaling.Factor)
	e.u32(uint32(c.RopeScaling.OrigContext))
	e.value(c.RopeScaling.LowFreqFactor)
	e.value(c.RopeScaling.HighFreqFactor)
	e.u32(uint32(c.Experts))
	e.u32(uint32(c.ExpertsUsed))
	e.buf.Write(mf.Tokenizer[:])
	encodeEntries(&e, mf.Tensors)
	return e.buf.Bytes()
}

func encodeEntries(e *ggufEncoder, ts []TensorEntry) {
	e.u32(uint32(len(ts)))
	for _, t := range ts {
		e.str(t.Name)
		e.u8(uint8(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(uint64(d))
		}
		e.u32(uint32(t.DType))
		e.buf.Write(t.Hash[:])
	}
}

// CID is the model's content identifier: CIDv1, raw codec, sha2-256 of Encode().
func (mf *Manifest) CID() cid.Cid { return manifestCID(mf.Encode()) }

func manifestCID(b []byte) cid.Cid {
	sum := sha256.Sum256(b)
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil { // only for unknown codes or a digest of the wrong length
		panic(fmt.Sprintf("multihash of a sha2-256 digest: %v", err))
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// Layer returns the manifest of layer i: the model's CID, i, and the entries of the
// tensors named blk.i.*.
func (mf *Manifest) Layer(i int) (*LayerManifest, error) {
	return mf.layer(mf.CID(), i)
}

func (mf *Manifest) layer(model cid.Cid, i int) (*LayerManifest, error) {
	if i < 0 || i >= mf.Config.Layers {
		return nil, fmt.Errorf("layer %d out of range (model has %d)", i, mf.Config.Layers)
	}
	lm := &LayerManifest{Model: model, Layer: i}
	prefix := "blk." + strconv.Itoa(i) + "."
	for _, t := range mf.Tensors {
		if strings.HasPrefix(t.Name, prefix) {
			lm.Tensors = append(lm.Tensors, t)
		}
	}
	return lm, nil
}

// LayerCID is the CID of layer i's manifest, the key under which nodes serving
// that layer of this model announce themselves.
func (mf *Manifest) LayerCID(i int) (cid.Cid, error) {
	lm, err := mf.Layer(i)
	if err != nil {
		return cid.Undef, err
	}
	return lm.CID(), nil
}

// Encode returns the canonical bytes of the layer manifest.
func (lm *LayerManifest) Encode() []byte {
	var e ggufEncoder
	e.buf.WriteString(layerManifestTag)
	e.str(string(lm.Model.Bytes()))
	e.u32(uint32(lm.Layer))
	encodeEntries(&e, lm.Tensors)
	return e.buf.Bytes()
}

// CID is the layer's content identifier: CIDv1, raw codec, sha2-256 of Encode().
func (lm *LayerManifest) CID() cid.Cid { return manifestCID(lm.Encode()) }

// ParseManifest decodes a model manifest received from a peer. It accepts only the
// canonical encoding, a valid configuration, and tensors consistent with it (the
// same check a loaded model passes), so a manifest that parses can be trusted to
// be well formed; whether it is the right one is for its CID to say.
func ParseManifest(b []byte) (*Manifest, error) {
	r, err := manifestReader(b, modelManifestTag)
	if err != nil {
		return nil, err
	}
	mf := &Manifest{}
	c := &mf.Config
	c.Arch = r.str(64)
	for _, p := range []*int{&c.VocabSize, &c.Dim, &c.Layers, &c.Heads, &c.KVHeads, &c.HeadDim, &c.FFN, &c.ContextLength, &c.RopeDim} {
		*p = r.int32()
	}
	c.RopeNeox, _ = r.value(ggufBool, 0).(bool)
	c.RopeBase = math.Float32frombits(r.u32())
	c.NormEps = math.Float32frombits(r.u32())
	c.RopeScaling.Type = r.str(64)
	c.RopeScaling.Factor = math.Float32frombits(r.u32())
	c.RopeScaling.OrigContext = r.int32()
	c.RopeScaling.LowFreqFactor = math.Float32frombits(r.u32())
	c.RopeScaling.HighFreqFactor = math.Float32frombits(r.u32())
	c.Experts = r.int32()
	c.ExpertsUsed = r.int32()
	copy(mf.Tokenizer[:], r.take(32))
	if r.err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, r.err)
	}
	switch c.Arch {
	case "llama", "qwen2":
	default:
		return nil, fmt.Errorf("%w: manifest architecture %q is not supported", ErrFormat, c.Arch)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if mf.Tensors, err = decodeEntries(r); err != nil {
		return nil, err
	}
	// The tensors must be what the configuration implies, as for a loaded model.
	m := &Model{Config: *c, Tensors: make([]Tensor, len(mf.Tensors))}
	for i, t := range mf.Tensors {
		m.Tensors[i] = Tensor{Name: t.Name, Shape: t.Shape, DType: t.DType}
	}
	m.index()
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return mf, nil
}

// ParseLayerManifest decodes a layer manifest received from a peer, accepting only
// the canonical encoding and tensors of the layer it names.
func ParseLayerManifest(b []byte) (*LayerManifest, error) {
	r, err := manifestReader(b, layerManifestTag)
	if err != nil {
		return nil, err
	}
	raw := r.str(128)
	lm := &LayerManifest{Layer: r.int32()}
	if r.err != nil {
		return nil, fmt.Errorf("%w: layer manifest: %v", ErrFormat, r.err)
	}
	if lm.Model, err = cid.Cast([]byte(raw)); err != nil {
		return nil, fmt.Errorf("%w: layer manifest model CID: %v", ErrFormat, err)
	}
	// cid.Cast accepts CIDv0 and other codecs; only what Manifest.CID makes is
	// canonical, and a second spelling of the same model would fork the DHT key.
	if lm.Model.Prefix() != manifestCID(nil).Prefix() {
		return nil, fmt.Errorf("%w: layer manifest names %s, which is not a model manifest CID", ErrFormat, lm.Model)
	}
	if lm.Layer >= maxLayers {
		return nil, fmt.Errorf("%w: layer manifest layer %d out of range", ErrFormat, lm.Layer)
	}
	if lm.Tensors, err = decodeEntries(r); err != nil {
		return nil, err
	}
	prefix := "blk." + strconv.Itoa(lm.Layer) + "."
	for _, t := range lm.Tensors {
		if !strings.HasPrefix(t.Name, prefix) {
			return nil, fmt.Errorf("%w: layer manifest of layer %d holds tensor %q", ErrFormat, lm.Layer, t.Name)
		}
	}
	return lm, nil
}

func manifestReader(b []byte, tag string) (*reader, error) {
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%w: manifest of %d bytes exceeds the limit of %d", ErrFormat, len(b), maxManifest)
	}
	if !bytes.HasPrefix(b, []byte(tag)) {
		return nil, fmt.Errorf("%w: not a %q", ErrFormat, strings.TrimSpace(tag))
	}
	return &reader{buf: b, off: len(tag)}, nil
}

// int32 reads a u32 that must fit an int32, as every count in a manifest does.
func (r *reader) int32() int {
	v := r.u32()
	if v > math.MaxInt32 && r.err == nil {
		r.err = fmt.Errorf("value %d out of range", v)
	}
	return int(v)
}

// decodeEntries reads the tensor entries that end a manifest and checks that
// nothing follows them.
func decodeEntries(r *reader) ([]TensorEntry, error) {
	n := r.u32()
	// An entry takes at least 1+8 (name) + 1+8 (one dimension) + 4 + 32 bytes.
	const minEntry = 54
	if r.err == nil && uint64(n) > uint64(len(r.buf)-r.off)/minEntry {
		return nil, fmt.Errorf("%w: manifest claims %d tensors in %d bytes", ErrFormat, n, len(r.buf)-r.off)
	}
	ts := make([]TensorEntry, 0, min(n, allocHint))
	names := make(map[string]bool, min(n, allocHint))
	for i := uint32(0); i < n && r.err == nil; i++ {
		t := TensorEntry{Name: r.str(maxNameLen)}
		nd := r.u8()
		if r.err != nil {
			break
		}
		if t.Name == "" || !utf8.ValidString(t.Name) || names[t.Name] {
			return nil, fmt.Errorf("%w: manifest tensor %d has an empty, invalid or duplicate name %q", ErrFormat, i, t.Name)
		}
		names[t.Name] = true
		if nd == 0 || nd > maxDims {
			return nil, fmt.Errorf("%w: manifest tensor %q has %d dimensions", ErrFormat, t.Name, nd)
		}
		t.Shape = make([]int64, nd)
		for d := range t.Shape {
			v := r.u64()
			if v > math.MaxInt32*16 {
				v = 0 // rejected below with the other bad dimensions
			}
			t.Shape[d] = int64(v)
		}
		t.DType = kernels.DType(r.u32())
		copy(t.Hash[:], r.take(32))
		if r.err != nil {
			break
		}
		if _, err := (TensorSource{Name: t.Name, Shape: t.Shape, DType: t.DType}).Size(); err != nil {
			return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, err)
		}
		ts = append(ts, t)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, r.err)
	}
	if r.off != len(r.buf) {
		return nil, fmt.Errorf("%w: %d bytes after the manifest", ErrFormat, len(r.buf)-r.off)
	}
	return ts, nil
}

// identity holds a loaded model's manifest and CIDs, computed once on first use:
// hashing a gigabyte model takes a noticeable fraction of a second.
type identity struct {
	once      sync.Once
	manifest  *Manifest
	cid       cid.Cid
	layerCIDs []cid.Cid
	err       error
	// progress, when set, hears how many bytes compute has hashed.
	progress func(done, total int64)
}

func (ids *identity) compute(m *Model) {
	tok, err := TokenizerDigest(m.Meta, m.TokenizerJSON, m.TokenizerConfigJSON)
	if err != nil {
		ids.err = err
		return
	}
	ids.manifest = newManifest(m.Config, tok, m.Tensors, ids.progress)
	ids.cid = ids.manifest.CID()
	ids.layerCIDs = make([]cid.Cid, m.Config.Layers)
	for i := range ids.layerCIDs {
		lm, err := ids.manifest.layer(ids.cid, i)
		if err != nil {
			ids.err = err
			return
		}
		ids.layerCIDs[i] = lm.CID()
	}
}

func (m *Model) identity() (*identity, error) {
	ids := m.ids
	if ids == nil { // a Model built by hand rather than loaded: no cache
		ids = &identity{}
	}
	ids.once.Do(func() { ids.compute(m) })
	return ids, ids.err
}

// Manifest returns the model's manifest, computing it on first use (which reads
// every byte of the weights). The manifest is shared: do not modify it. The model's
// tensors must not change after loading, or the manifest will not describe them.
func (m *Model) Manifest() (*Manifest, error) {
	ids, err := m.identity()
	if err != nil {
		return nil, err
	}
	return ids.manifest, nil
}

// CID returns the model's content identifier, the CID of its manifest.
func (m *Model) CID() (cid.Cid, error) {
	ids, err := m.identity()
	if err != nil {
		return cid.Undef, err
	}
	return ids.cid, nil
}

// LayerCID returns the CID of layer i's manifest: CID(M, i) of DESIGN.md §2.
func (m *Model) LayerCID(i int) (cid.Cid, error) {
	ids, err := m.identity()
	if err != nil {
		return cid.Undef, err
	}
	if i < 0 || i >= len(ids.layerCIDs) {
		return cid.Undef, fmt.Errorf("layer %d out of range (model has %d)", i, len(ids.layerCIDs))
	}
	return ids.layerCIDs[i], nil
}
