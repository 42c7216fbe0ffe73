package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Size limits of the JSON files of a HuggingFace directory. tokenizer.json of the
// largest vocabularies is around 20 MB.
const (
	maxConfigJSON    = 16 << 20
	maxIndexJSON     = 64 << 20
	maxTokenizerJSON = 128 << 20
)

// hfConfig is the part of a HuggingFace config.json imece reads.
type hfConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	NameOrPath            string          `json:"_name_or_path"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	VocabSize             int             `json:"vocab_size"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	RopeScaling           *hfRopeScaling  `json:"rope_scaling"`
	NumLocalExperts       int             `json:"num_local_experts"`
	NumExpertsPerTok      int             `json:"num_experts_per_tok"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
}

type hfRopeScaling struct {
	Type           string   `json:"type"`
	RopeType       string   `json:"rope_type"` // newer transformers spell it so
	Factor         float64  `json:"factor"`
	LowFreqFactor  *float64 `json:"low_freq_factor"`
	HighFreqFactor *float64 `json:"high_freq_factor"`
	OrigContext    int      `json:"original_max_position_embeddings"`
}

// hfArchitectures maps the HuggingFace model classes imece runs to GGUF
// architecture names. Mistral and Mixtral are LLaMA with a different class name
// (Mixtral adds experts, which the metadata carries).
var hfArchitectures = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "llama",
	"MixtralForCausalLM": "llama",
	"Qwen2ForCausalLM":   "qwen2",
}

// openHF loads a HuggingFace model directory: config.json, the weights in
// model.safetensors or in the shards a model.safetensors.index.json names, and
// tokenizer.json and tokenizer_config.json when present.
//
// Tensors are renamed to GGUF names but not permuted: HuggingFace checkpoints keep
// the query and key rows in the order rotate_half expects, so the model gets
// Config.RopeNeox instead of the permutation llama.cpp's converter applies.
func openHF(dir string) (*Model, error) {
	m, err := loadHF(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

func loadHF(dir string) (_ *Model, err error) {
	raw, err := readBounded(filepath.Join(dir, "config.json"), maxConfigJSON)
	if err != nil {
		return nil, err
	}
	var hc hfConfig
	if err := json.Unmarshal(raw, &hc); err != nil {
		return nil, fmt.Errorf("%w: config.json: %v", ErrFormat, err)
	}
	arch := ""
	for _, a := range hc.Architectures {
		if g, ok := hfArchitectures[a]; ok {
			arch = g
			break
		}
	}
	if arch == "" {
		return nil, fmt.Errorf("%w: config.json architectures %q are not supported (want LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM or Qwen2ForCausalLM)", ErrFormat, hc.Architectures)
	}
	md, err := hfMetadata(&hc, arch, filepath.Base(dir))
	if err != nil {
		return nil, err
	}

	m := &Model{Format: "safetensors", Path: dir, Meta: md}
	var unmaps []func() error
	m.close = func() error {
		var errs []error
		for _, u := range unmaps {
			errs = append(errs, u())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	shards, wantShard, err := hfShards(dir)
	if err != nil {
		return nil, err
	}
	found := make(map[string]string)  // HF tensor name → shard
	mapped := make(map[string]string) // GGUF name → HF name
	tied := hc.TieWordEmbeddings != nil && *hc.TieWordEmbeddings
	sawLMHead := false
	for _, shard := range shards {
		data, unmap, err := mapFile(filepath.Join(dir, shard))
		if err != nil {
			return nil, err
		}
		unmaps = append(unmaps, unmap)
		st, err := ParseSafetensors(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", shard, err)
		}
		for _, t := range st.Tensors {
			if prev, dup := found[t.Name]; dup {
				return nil, fmt.Errorf("%w: tensor %q is in both %s and %s", ErrFormat, t.Name, prev, shard)
			}
			found[t.Name] = shard
			if s, ok := wantShard[t.Name]; ok && s != shard {
				return nil, fmt.Errorf("%w: index puts tensor %q in %s, but it is in %s", ErrFormat, t.Name, s, shard)
			}
			name, skip, err := hfTensorName(t.Name, hc.NumHiddenLayers, hc.NumLocalExperts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", shard, err)
			}
			if name == "output.weight" {
				sawLMHead = true
				skip = skip || tied // the embedding is the output matrix; lm_head is unused
			}
			if skip {
				continue
			}
			if prev, dup := mapped[name]; dup {
				return nil, fmt.Errorf("%w: tensors %q and %q both map to %s", ErrFormat, prev, t.Name, name)
			}
			mapped[name] = t.Name
			t.Name = name
			m.Tensors = append(m.Tensors, t)
		}
	}
	m.index()
	for name, shard := range wantShard {
		if _, ok := found[name]; !ok {
			return nil, fmt.Errorf("%w: index puts tensor %q in %s, which does not hold it", ErrFormat, name, shard)
		}
	}
	if hc.TieWordEmbeddings != nil && !*hc.TieWordEmbeddings && !sawLMHead {
		return nil, fmt.Errorf("%w: tie_word_embeddings is false but lm_head.weight is missing", ErrFormat)
	}
	if m.TokenizerJSON, err = readOptional(filepath.Join(dir, "tokenizer.json"), maxTokenizerJSON); err != nil {
		return nil, err
	}
	if m.TokenizerConfigJSON, err = readOptional(filepath.Join(dir, "tokenizer_config.json"), maxConfigJSON); err != nil {
		return nil, err
	}
	m.Config, err = configFromGGUF(md, m)
	if err != nil {
		return nil, err
	}
	m.Config.RopeNeox = true
	if err := m.finish(); err != nil {
		return nil, err
	}
	return m, nil
}

// hfShards lists the safetensors files of a directory in name order, and, for a
// sharded checkpoint, the shard its index assigns each tensor.
func hfShards(dir string) ([]string, map[string]string, error) {
	raw, err := readBounded(filepath.Join(dir, "model.safetensors.index.json"), maxIndexJSON)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			return nil, nil, fmt.Errorf("no model.safetensors or model.safetensors.index.json: %w", err)
		}
		return []string{"model.safetensors"}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, nil, fmt.Errorf("%w: model.safetensors.index.json: %v", ErrFormat, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%w: model.safetensors.index.json has no weight_map", ErrFormat)
	}
	var shards []string
	for name, shard := range index.WeightMap {
		// A shard is a file beside the index, never a path: a hostile index must
		// not make us map /dev/zero or ../../secret.
		if shard == "" || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, nil, fmt.Errorf("%w: index puts tensor %q in %q, which is not a file name", ErrFormat, name, shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	return shards, index.WeightMap, nil
}

// hfMetadata renders config.json as the GGUF metadata llama.cpp's converter would
// write, so the rest of the package (and the engine) reads one form.
func hfMetadata(hc *hfConfig, arch, name string) (Metadata, error) {
	var errs []error
	u32 := func(key string, v int) uint32 {
		if v < 0 || v > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("%w: config.json %s %d out of range", ErrFormat, key, v))
		}
		return uint32(v)
	}
	if hc.NameOrPath != "" {
		name = hc.NameOrPath
	}
	p := arch + "."
	md := NewMetadata(
		KV{"general.architecture", arch},
		KV{"general.name", name},
		KV{p + "context_length", u32("max_position_embeddings", hc.MaxPositionEmbeddings)},
		KV{p + "embedding_length", u32("hidden_size", hc.HiddenSize)},
		KV{p + "block_count", u32("num_hidden_layers", hc.NumHiddenLayers)},
		KV{p + "feed_forward_length", u32("intermediate_size", hc.IntermediateSize)},
		KV{p + "attention.head_count", u32("num_attention_heads", hc.NumAttentionHeads)},
	)
	kv := hc.NumAttentionHeads
	if hc.NumKeyValueHeads != nil {
		kv = *hc.NumKeyValueHeads
	}
	md.Set(p+"attention.head_count_kv", u32("num_key_value_heads", kv))
	if hc.HeadDim != nil {
		md.Set(p+"attention.key_length", u32("head_dim", *hc.HeadDim))
		md.Set(p+"attention.value_length", u32("head_dim", *hc.HeadDim))
		md.Set(p+"rope.dimension_count", u32("head_dim", *hc.HeadDim))
	} else if hc.NumAttentionHeads > 0 {
		md.Set(p+"rope.dimension_count", u32("hidden_size", hc.HiddenSize/hc.NumAttentionHeads))
	}
	theta := 10000.0
	if hc.RopeTheta != nil {
		theta = *hc.RopeTheta
	}
	md.Set(p+"rope.freq_base", float32(theta))
	eps := 1e-6 // transformers' LlamaConfig default
	if hc.RMSNormEps != nil {
		eps = *hc.RMSNormEps
	}
	md.Set(p+"attention.layer_norm_rms_epsilon", float32(eps))
	if hc.VocabSize != 0 {
		md.Set(p+"vocab_size", u32("vocab_size", hc.VocabSize))
	}
	if hc.NumLocalExperts > 0 {
		md.Set(p+"expert_count", u32("num_local_experts", hc.NumLocalExperts))
		md.Set(p+"expert_used_count", u32("num_experts_per_tok", hc.NumExpertsPerTok))
	}
	if rs := hc.RopeScaling; rs != nil {
		typ := rs.RopeType
		if typ == "" {
			typ = rs.Type
		}
		if typ != "" && typ != "default" {
			md.Set(p+"rope.scaling.type", typ)
			md.Set(p+"rope.scaling.factor", float32(rs.Factor))
			if rs.OrigContext != 0 {
				md.Set(p+"rope.scaling.original_context_length", u32("original_max_position_embeddings", rs.OrigContext))
			}
			if rs.LowFreqFactor != nil {
				md.Set(p+"rope.scaling.low_freq_factor", float32(*rs.LowFreqFactor))
			}
			if rs.HighFreqFactor != nil {
				md.Set(p+"rope.scaling.high_freq_factor", float32(*rs.HighFreqFactor))
			}
		}
	}
	for _, tok := range []struct {
		key string
		raw json.RawMessage
	}{{"tokenizer.ggml.bos_token_id", hc.BOSTokenID}, {"tokenizer.ggml.eos_token_id", hc.EOSTokenID}} {
		// eos_token_id may be a list (Llama 3.1); GGUF holds one, the first.
		var id int
		var ids []int
		if json.Unmarshal(tok.raw, &id) != nil {
			if json.Unmarshal(tok.raw, &ids) != nil || len(ids) == 0 {
				continue
			}
			id = ids[0]
		}
		if id >= 0 && id <= math.MaxInt32 {
			md.Set(tok.key, uint32(id))
		}
	}
	return md, errors.Join(errs...)
}

// hfLayerTensors maps the per-layer HuggingFace names (after "model.layers.N.") to
// GGUF names (after "blk.N.").
var hfLayerTensors = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"self_attn.q_proj.bias":           "attn_q.bias",
	"self_attn.k_proj.bias":           "attn_k.bias",
	"self_attn.v_proj.bias":           "attn_v.bias",
	"self_attn.o_proj.bias":           "attn_output.bias",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
	"block_sparse_moe.gate.weight":    "ffn_gate_inp.weight",
}

// hfExpertTensors maps Mixtral's expert matrices: w1 is the gate, w3 the up and w2
// the down projection.
var hfExpertTensors = map[string]string{"w1.weight": "ffn_gate", "w3.weight": "ffn_up", "w2.weight": "ffn_down"}

// hfTensorName maps a HuggingFace tensor name to its GGUF name. skip reports tensors
// that carry nothing the engine needs (precomputed rotary tables); any other name it
// does not know is an error, since silently dropping a weight computes nonsense.
func hfTensorName(name string, layers, experts int) (gguf string, skip bool, err error) {
	unknown := fmt.Errorf("%w: tensor %q has no GGUF equivalent", ErrFormat, name)
	if name == "lm_head.weight" {
		return "output.weight", false, nil
	}
	rest := strings.TrimPrefix(name, "model.")
	switch rest {
	case "embed_tokens.weight":
		return "token_embd.weight", false, nil
	case "norm.weight":
		return "output_norm.weight", false, nil
	}
	after, ok := strings.CutPrefix(rest, "layers.")
	if !ok {
		return "", false, unknown
	}
	num, suffix, ok := strings.Cut(after, ".")
	layer, ok2 := index(num, layers)
	if !ok || !ok2 {
		return "", false, fmt.Errorf("%w: tensor %q: layer %q out of range (%d layers)", ErrFormat, name, num, layers)
	}
	if g, ok := hfLayerTensors[suffix]; ok {
		return LayerTensor(layer, g), false, nil
	}
	if strings.HasSuffix(suffix, "rotary_emb.inv_freq") {
		return "", true, nil
	}
	expert, ok := strings.CutPrefix(suffix, "block_sparse_moe.experts.")
	if !ok {
		return "", false, unknown
	}
	num, w, _ := strings.Cut(expert, ".")
	e, ok := index(num, experts)
	g, ok2 := hfExpertTensors[w]
	if !ok || !ok2 {
		return "", false, unknown
	}
	return LayerTensor(layer, fmt.Sprintf("%s.%d.weight", g, e)), false, nil
}

// index parses a canonical decimal index below n ("07" is not one: two spellings
// of one index would map two tensors to one name).
func index(s string, n int) (int, bool) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrFormat, filepath.Base(path), st.Size(), limit)
	}
	return os.ReadFile(path)
}

// readOptional is readBounded that returns nil for a file that does not exist.
func readOptional(path string, limit int64) ([]byte, error) {
	b, err := readBounded(path, limit)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
