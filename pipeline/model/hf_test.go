package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imece/imece/kernels"
)

// hfName is the inverse of hfTensorName, for building HuggingFace directories out
// of synthesised models.
func hfName(gguf string) string {
	switch gguf {
	case "token_embd.weight":
		return "model.embed_tokens.weight"
	case "output_norm.weight":
		return "model.norm.weight"
	case "output.weight":
		return "lm_head.weight"
	}
	var layer int
	var rest string
	if _, err := fmt.Sscanf(gguf, "blk.%d.%s", &layer, &rest); err != nil {
		panic(gguf)
	}
	for hf, g := range hfLayerTensors {
		if g == rest {
			return fmt.Sprintf("model.layers.%d.%s", layer, hf)
		}
	}
	var kind string
	var expert int
	if _, err := fmt.Sscanf(strings.Replace(rest, ".", " ", 2), "%s %d weight", &kind, &expert); err == nil {
		for w, g := range hfExpertTensors {
			if g == kind {
				return fmt.Sprintf("model.layers.%d.block_sparse_moe.experts.%d.%s", layer, expert, w)
			}
		}
	}
	panic(gguf)
}

// hfDir describes a HuggingFace directory to write.
type hfDir struct {
	config  map[string]any
	tensors []Tensor // with HuggingFace names
	shards  int      // 0: one model.safetensors; n: n shards and an index
	extra   map[string]string
}

// hfFromModel builds the HuggingFace form of a loaded GGUF model: config.json from
// its Config, tensors renamed, experts split into one matrix per expert.
func hfFromModel(m *Model, arch string) hfDir {
	c := m.Config
	cfg := map[string]any{
		"architectures":           []string{arch},
		"hidden_size":             c.Dim,
		"intermediate_size":       c.FFN,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"rms_norm_eps":            c.NormEps,
		"rope_theta":              c.RopeBase,
		"max_position_embeddings": c.ContextLength,
		"vocab_size":              c.VocabSize,
		"tie_word_embeddings":     false,
		"bos_token_id":            1,
		"eos_token_id":            []int{2, 5},
	}
	if c.Experts > 0 {
		cfg["num_local_experts"] = c.Experts
		cfg["num_experts_per_tok"] = c.ExpertsUsed
	}
	var ts []Tensor
	for _, t := range m.Tensors {
		if len(t.Shape) == 3 { // split ffn_*_exps into per-expert matrices
			per := len(t.Data) / int(t.Shape[2])
			kind := strings.TrimSuffix(strings.SplitN(t.Name, ".", 3)[2], "_exps.weight")
			layer := strings.SplitN(t.Name, ".", 3)[1]
			for e := range int(t.Shape[2]) {
				name := hfName(fmt.Sprintf("blk.%s.%s.%d.weight", layer, kind, e))
				ts = append(ts, Tensor{Name: name, Shape: t.Shape[:2], DType: t.DType, Data: t.Data[e*per : (e+1)*per]})
			}
			continue
		}
		t.Name = hfName(t.Name)
		ts = append(ts, t)
	}
	return hfDir{config: cfg, tensors: ts, extra: map[string]string{
		"tokenizer.json":        `{"model":{"type":"BPE"}}`,
		"tokenizer_config.json": `{"chat_template":"{{x}}"}`,
	}}
}

func (d hfDir) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	put := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := json.Marshal(d.config)
	if err != nil {
		t.Fatal(err)
	}
	put("config.json", cfg)
	for name, content := range d.extra {
		put(name, []byte(content))
	}
	writeST := func(name string, ts []Tensor) {
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, map[string]string{"format": "pt"}, ts...); err != nil {
			t.Fatal(err)
		}
		put(name, buf.Bytes())
	}
	if d.shards == 0 {
		writeST("model.safetensors", d.tensors)
		return dir
	}
	weightMap := map[string]string{}
	per := (len(d.tensors) + d.shards - 1) / d.shards
	for s := range d.shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, d.shards)
		part := d.tensors[min(s*per, len(d.tensors)):min((s+1)*per, len(d.tensors))]
		// Write each shard in reverse so that file order is not name order.
		part = slices.Clone(part)
		slices.Reverse(part)
		writeST(name, part)
		for _, t := range part {
			weightMap[t.Name] = name
		}
	}
	index, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	put("model.safetensors.index.json", index)
	return dir
}

// sameTensors checks that two models hold the same named tensors, whatever order.
func sameTensors(t *testing.T, got, want *Model) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Errorf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g, ok := got.Tensor(w.Name)
		if !ok {
			t.Errorf("tensor %s missing", w.Name)
			continue
		}
		if !reflect.DeepEqual(g.Shape, w.Shape) || g.DType != w.DType || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %s: %v %s, want %v %s (or different bytes)", w.Name, g.Shape, g.DType, w.Shape, w.DType)
		}
	}
}

func TestOpenHF(t *testing.T) {
	o := tinyOptions()
	gg, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"LlamaForCausalLM", "MistralForCausalLM"} {
		for _, shards := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/%d shards", arch, shards), func(t *testing.T) {
				d := hfFromModel(gg, arch)
				d.shards = shards
				m, err := Open(d.write(t))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				want := gg.Config
				want.RopeNeox = true
				if m.Config != want {
					t.Errorf("config %+v\nwant %+v", m.Config, want)
				}
				if m.Format != "safetensors" || string(m.TokenizerJSON) != d.extra["tokenizer.json"] ||
					string(m.TokenizerConfigJSON) != d.extra["tokenizer_config.json"] {
					t.Errorf("format %q, tokenizer %q, %q", m.Format, m.TokenizerJSON, m.TokenizerConfigJSON)
				}
				sameTensors(t, m, gg)
				for key, want := range map[string]any{
					"general.architecture": "llama", "llama.block_count": uint32(3), "llama.attention.head_count_kv": uint32(2),
					"llama.rope.freq_base": float32(10000), "tokenizer.ggml.bos_token_id": uint32(1), "tokenizer.ggml.eos_token_id": uint32(2),
				} {
					if v, _ := m.Meta.Get(key); v != want {
						t.Errorf("metadata %s = %v (%T), want %v", key, v, v, want)
					}
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestOpenHFQwen2Biases(t *testing.T) {
	gg, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	d := hfFromModel(gg, "Qwen2ForCausalLM")
	for i := range gg.Config.Layers {
		for _, p := range []struct {
			name string
			n    int
		}{{"q_proj", 64}, {"k_proj", 32}, {"v_proj", 32}} {
			d.tensors = append(d.tensors, Tensor{Name: fmt.Sprintf("model.layers.%d.self_attn.%s.bias", i, p.name),
				Shape: []int64{int64(p.n)}, DType: kernels.F32, Data: make([]byte, 4*p.n)})
		}
	}
	// Qwen2 ties embeddings in its small sizes: no lm_head.
	d.config["tie_word_embeddings"] = true
	d.config["rope_theta"] = 1e6
	d.tensors = slices.DeleteFunc(d.tensors, func(t Tensor) bool { return t.Name == "lm_head.weight" })
	m, err := Open(d.write(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.Arch != "qwen2" || !m.Config.RopeNeox || m.Config.RopeBase != 1e6 {
		t.Errorf("config %+v", m.Config)
	}
	if a, _ := m.Meta.String("general.architecture"); a != "qwen2" {
		t.Errorf("architecture %q", a)
	}
	for _, name := range []string{"blk.2.attn_q.bias", "blk.2.attn_k.bias", "blk.0.attn_v.bias"} {
		if _, ok := m.Tensor(name); !ok {
			t.Errorf("%s missing", name)
		}
	}
	if _, ok := m.Tensor("output.weight"); ok {
		t.Error("tied model has an output matrix")
	}
}

func TestOpenHFMixtral(t *testing.T) {
	o := tinyOptions()
	o.Experts, o.ExpertsUsed = 4, 2
	gg, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	d := hfFromModel(gg, "MixtralForCausalLM")
	d.shards = 2
	m, err := Open(d.write(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.Experts != 4 || m.Config.ExpertsUsed != 2 {
		t.Errorf("experts %d/%d", m.Config.Experts, m.Config.ExpertsUsed)
	}
	// Expert e of the GGUF 3-D tensor is the HuggingFace expert e.
	exps, _ := gg.Tensor("blk.1.ffn_down_exps.weight")
	per := len(exps.Data) / 4
	for e := range 4 {
		x, ok := m.Tensor(fmt.Sprintf("blk.1.ffn_down.%d.weight", e))
		if !ok || !bytes.Equal(x.Data, exps.Data[e*per:(e+1)*per]) {
			t.Errorf("expert %d differs", e)
		}
	}
	if _, ok := m.Tensor("blk.3.ffn_gate_inp.weight"); ok {
		t.Error("layer 3 exists")
	}
	if _, ok := m.Tensor("blk.2.ffn_gate_inp.weight"); !ok {
		t.Error("router missing")
	}
}

func TestOpenHFRopeScaling(t *testing.T) {
	gg, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	d := hfFromModel(gg, "LlamaForCausalLM")
	d.config["rope_theta"] = 500000
	d.config["head_dim"] = 16
	d.config["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
		"high_freq_factor": 4, "original_max_position_embeddings": 8192}
	m, err := Open(d.write(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := RopeScaling{Type: "llama3", Factor: 8, OrigContext: 8192, LowFreqFactor: 1, HighFreqFactor: 4}
	if m.Config.RopeScaling != want {
		t.Errorf("rope scaling %+v, want %+v", m.Config.RopeScaling, want)
	}
	// Linear scaling and the old "type" spelling.
	d.config["rope_scaling"] = map[string]any{"type": "linear", "factor": 2}
	m2, err := Open(d.write(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.Config.RopeScaling != (RopeScaling{Type: "linear", Factor: 2}) {
		t.Errorf("rope scaling %+v", m2.Config.RopeScaling)
	}
	// llama3 without its parameters gets Llama 3.1's.
	d.config["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8}
	m3, err := Open(d.write(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m3.Close()
	if m3.Config.RopeScaling != want {
		t.Errorf("rope scaling %+v, want %+v", m3.Config.RopeScaling, want)
	}
}

func TestOpenHFErrors(t *testing.T) {
	gg, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	without := func(name string) func(*hfDir) {
		return func(d *hfDir) {
			d.tensors = slices.DeleteFunc(d.tensors, func(t Tensor) bool { return t.Name == name })
		}
	}
	tests := []struct {
		name string
		edit func(*hfDir)
		want string
	}{
		{"architecture", func(d *hfDir) { d.config["architectures"] = []string{"GPT2LMHeadModel"} }, `architectures ["GPT2LMHeadModel"] are not supported`},
		{"missing tensor", without("model.layers.1.mlp.up_proj.weight"), "tensor blk.1.ffn_up.weight is missing"},
		{"untied without lm_head", without("lm_head.weight"), "tie_word_embeddings is false but lm_head.weight is missing"},
		{"unknown tensor", func(d *hfDir) {
			d.tensors = append(d.tensors, Tensor{Name: "model.layers.0.mlp.extra.weight", Shape: []int64{1}, DType: kernels.F32, Data: make([]byte, 4)})
		}, `tensor "model.layers.0.mlp.extra.weight" has no GGUF equivalent`},
		{"layer out of range", func(d *hfDir) {
			d.tensors = append(d.tensors, Tensor{Name: "model.layers.3.input_layernorm.weight", Shape: []int64{64}, DType: kernels.F32, Data: make([]byte, 256)})
		}, `layer "3" out of range (3 layers)`},
		{"non-canonical layer", func(d *hfDir) {
			d.tensors = append(d.tensors, Tensor{Name: "model.layers.01.input_layernorm.weight", Shape: []int64{64}, DType: kernels.F32, Data: make([]byte, 256)})
		}, `layer "01" out of range`},
		{"two spellings", func(d *hfDir) {
			d.tensors = append(d.tensors, Tensor{Name: "norm.weight", Shape: []int64{64}, DType: kernels.F32, Data: make([]byte, 256)})
		}, `tensors "model.norm.weight" and "norm.weight" both map to output_norm.weight`},
		{"wrong shape", func(d *hfDir) {
			for i, t := range d.tensors {
				if t.Name == "model.layers.2.self_attn.k_proj.weight" {
					d.tensors[i].Shape = []int64{32, 64} // transposed
				}
			}
		}, "tensor blk.2.attn_k.weight has shape [32 64], want [64 32]"},
		{"bad config value", func(d *hfDir) { d.config["num_hidden_layers"] = -1 }, "num_hidden_layers -1 out of range"},
		{"bad rope scaling", func(d *hfDir) { d.config["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4} }, `rope scaling "yarn" is not supported`},
		{"rope scaling factor", func(d *hfDir) { d.config["rope_scaling"] = map[string]any{"rope_type": "llama3"} }, "rope scaling factor 0 out of range"},
		{"no weights", func(d *hfDir) { d.tensors = nil; d.shards = -1 }, "no model.safetensors or model.safetensors.index.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := hfFromModel(gg, "LlamaForCausalLM")
			tt.edit(&d)
			var dir string
			if d.shards < 0 {
				dir = t.TempDir()
				cfg, _ := json.Marshal(d.config)
				os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
			} else {
				dir = d.write(t)
			}
			m, err := Open(dir)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tt.want)
			}
		})
	}
}

func TestOpenHFIndexErrors(t *testing.T) {
	gg, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(weightMap map[string]string)
		want string
	}{
		{"path in shard name", func(wm map[string]string) { wm["model.norm.weight"] = "../model-00001-of-00002.safetensors" }, "which is not a file name"},
		{"tensor not in its shard", func(wm map[string]string) { wm["model.extra.weight"] = "model-00001-of-00002.safetensors" }, `index puts tensor "model.extra.weight" in model-00001-of-00002.safetensors, which does not hold it`},
		{"wrong shard", func(wm map[string]string) {
			for k, v := range wm {
				if strings.HasPrefix(v, "model-00001") {
					wm[k] = "model-00002-of-00002.safetensors"
					return
				}
			}
		}, "but it is in model-00001-of-00002.safetensors"},
		{"missing shard", func(wm map[string]string) { wm["model.extra.weight"] = "model-00003-of-00002.safetensors" }, "no such file"},
		{"empty", func(wm map[string]string) { clear(wm) }, "has no weight_map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := hfFromModel(gg, "LlamaForCausalLM")
			d.shards = 2
			dir := d.write(t)
			path := filepath.Join(dir, "model.safetensors.index.json")
			raw, _ := os.ReadFile(path)
			var index struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			json.Unmarshal(raw, &index)
			wm := maps.Clone(index.WeightMap)
			tt.edit(wm)
			raw, _ = json.Marshal(map[string]any{"weight_map": wm})
			os.WriteFile(path, raw, 0o644)
			m, err := Open(dir)
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tt.want)
			}
			if tt.name != "missing shard" && !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}
