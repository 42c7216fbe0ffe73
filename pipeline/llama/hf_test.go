package llama

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imece/imece/pipeline/model"
)

// hfName maps a GGUF tensor name back to its HuggingFace name.
func hfName(gguf string) string {
	switch gguf {
	case "token_embd.weight":
		return "model.embed_tokens.weight"
	case "output_norm.weight":
		return "model.norm.weight"
	case "output.weight":
		return "lm_head.weight"
	}
	rest := strings.TrimPrefix(gguf, "blk.")
	i := strings.IndexByte(rest, '.')
	layer, suffix := rest[:i], rest[i+1:]
	hf := map[string]string{
		"attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
		"attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
		"ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
		"ffn_down.weight": "mlp.down_proj.weight", "attn_norm.weight": "input_layernorm.weight",
		"ffn_norm.weight": "post_attention_layernorm.weight",
	}[suffix]
	return "model.layers." + layer + "." + hf
}

// unpermute undoes llama.cpp's convert_hf_to_gguf permutation of query/key rows:
// GGUF rotates interleaved pairs (2i, 2i+1) of each head, HuggingFace rotates
// halves (i, i+d/2), so HF row i is GGUF row 2i and HF row i+d/2 is GGUF row 2i+1.
func unpermute(t model.Tensor, heads int) model.Tensor {
	rows, rowBytes := t.Rows(), len(t.Data)/t.Rows()
	d := rows / heads
	out := make([]byte, len(t.Data))
	for h := 0; h < heads; h++ {
		for i := 0; i < d/2; i++ {
			for k, src := range []int{2 * i, 2*i + 1} {
				dst := h*d + i + k*d/2
				copy(out[dst*rowBytes:(dst+1)*rowBytes], t.Data[(h*d+src)*rowBytes:(h*d+src+1)*rowBytes])
			}
		}
	}
	t.Data = out
	return t
}

// TestHuggingFaceLayoutMatchesGGUF converts stories260K into a HuggingFace
// directory the way a PyTorch checkpoint would hold it (query/key rows in the
// rotate-half layout), loads it through the safetensors path, and checks that the
// NEOX rotation on those weights produces what the interleaved rotation produces on
// the GGUF weights: the same logits and the same greedy text.
func TestHuggingFaceLayoutMatchesGGUF(t *testing.T) {
	g := stories(t)
	c := g.Config
	var tensors []model.Tensor
	for _, tn := range g.Tensors {
		switch {
		case strings.HasSuffix(tn.Name, "attn_q.weight"):
			tn = unpermute(tn, c.Heads)
		case strings.HasSuffix(tn.Name, "attn_k.weight"):
			tn = unpermute(tn, c.KVHeads)
		}
		tn.Name = hfName(tn.Name)
		tensors = append(tensors, tn)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteSafetensors(f, map[string]string{"format": "pt"}, tensors...); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, _ := json.Marshal(map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "hidden_size": c.Dim, "intermediate_size": c.FFN,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "num_hidden_layers": c.Layers,
		"rms_norm_eps": c.NormEps, "rope_theta": c.RopeBase, "vocab_size": c.VocabSize,
		"max_position_embeddings": c.ContextLength, "tie_word_embeddings": false,
	})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := model.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !h.Config.RopeNeox {
		t.Fatal("HuggingFace model not marked NEOX")
	}
	be := cpu(t)
	gs, err := NewStage(g, be)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := NewStage(h, be)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 403, 407, 261, 378} // <s> Once upon a time
	want := chain(t, []*Stage{gs}, prompt, 123)
	got := chain(t, []*Stage{hs}, prompt, 123)
	for step := range want {
		w := make([]float64, len(want[step]))
		for i, x := range want[step] {
			w[i] = float64(x)
		}
		compareLogits(t, "HF vs GGUF", got[step], w, 1e-5)
	}
}
