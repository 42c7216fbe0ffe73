package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// stories260KCID pins the identity of the reference model. It changes only if the
// manifest encoding changes, which renames every model on the network: bump the
// version tag in manifest.go and this constant together, deliberately.
const stories260KCID = "bafkreiauvc7mgxu2kxxlph2y44rr6rnsgyaulrflzyz4gy4xjg7625pfni"

func TestStories260KCID(t *testing.T) {
	m, err := FromGGUF(stories260K(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.CID()
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != stories260KCID {
		t.Errorf("CID of stories260K = %s, want %s", c, stories260KCID)
	}
	if c.Version() != 1 || c.Type() != cid.Raw || c.Prefix().MhType != 0x12 {
		t.Errorf("CID prefix %+v, want CIDv1 raw sha2-256", c.Prefix())
	}
}

func TestManifestRoundTrip(t *testing.T) {
	o := tinyOptions()
	o.Experts, o.ExpertsUsed = 4, 2
	m, err := FromGGUF(synthBytes(t, o))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := m.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if mf.Config != m.Config || len(mf.Tensors) != len(m.Tensors) {
		t.Fatalf("manifest config %+v with %d tensors", mf.Config, len(mf.Tensors))
	}
	for i, e := range mf.Tensors {
		if e.Name != m.Tensors[i].Name {
			t.Fatalf("entry %d is %s, want %s (file order)", i, e.Name, m.Tensors[i].Name)
		}
	}
	enc := mf.Encode()
	back, err := ParseManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, mf) {
		t.Error("parsed manifest differs from the original")
	}
	if !bytes.Equal(back.Encode(), enc) {
		t.Error("re-encoding changed the bytes")
	}
	want, _ := m.CID()
	if back.CID() != want {
		t.Errorf("CID of the parsed manifest %s, want %s", back.CID(), want)
	}
	for i := range m.Config.Layers {
		lm, err := back.Layer(i)
		if err != nil {
			t.Fatal(err)
		}
		if len(lm.Tensors) != 10 { // 2 norms, 4 attention, the router and 3 expert tensors
			t.Errorf("layer %d has %d tensors", i, len(lm.Tensors))
		}
		lb, err := ParseLayerManifest(lm.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(lb, lm) {
			t.Errorf("layer %d manifest does not round-trip", i)
		}
		got, _ := m.LayerCID(i)
		if lm.CID() != got || lb.CID() != got {
			t.Errorf("layer %d CID %s, model says %s", i, lm.CID(), got)
		}
	}
	if _, err := m.LayerCID(3); err == nil {
		t.Error("LayerCID(3) of a 3-layer model succeeded")
	}
}

// TestCIDIdentity checks what DESIGN.md §2 promises: the same file gives the same
// CID however it is loaded, and a changed byte of weights changes the model's CID and
// the content of exactly the layer it lies in.
func TestCIDIdentity(t *testing.T) {
	path := synthFile(t, tinyOptions())
	load := func(data []byte) *Model {
		t.Helper()
		m, err := FromGGUF(data)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, err := OpenGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	orig, _ := os.ReadFile(path)
	b := load(bytes.Clone(orig))
	cidA, _ := a.CID()
	cidB, _ := b.CID()
	if cidA != cidB {
		t.Fatalf("two loads of one file: %s and %s", cidA, cidB)
	}
	mfA, _ := a.Manifest()
	for i := range a.Config.Layers {
		x, _ := a.LayerCID(i)
		y, _ := b.LayerCID(i)
		if x != y {
			t.Errorf("layer %d: %s and %s", i, x, y)
		}
	}

	for _, name := range []string{"token_embd.weight", "blk.0.attn_norm.weight", "blk.1.ffn_down.weight", "blk.2.attn_v.weight", "output.weight"} {
		t.Run(name, func(t *testing.T) {
			data := bytes.Clone(orig)
			g, err := ParseGGUF(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range g.Tensors {
				if x.Name == name {
					x.Data[len(x.Data)/2] ^= 1 // the tensor's bytes alias data
				}
			}
			m := load(data)
			c, _ := m.CID()
			if c == cidA {
				t.Fatal("model CID unchanged")
			}
			mf, _ := m.Manifest()
			for i := range a.Config.Layers {
				before, _ := mfA.Layer(i)
				after, _ := mf.Layer(i)
				inLayer := strings.HasPrefix(name, LayerTensor(i, ""))
				// Every layer names the new model CID; apart from that, only the
				// layer holding the byte may differ.
				after.Model = before.Model
				if changed := after.CID() != before.CID(); changed != inLayer {
					t.Errorf("layer %d content changed = %v, want %v", i, changed, inLayer)
				}
				lc, _ := m.LayerCID(i)
				if old, _ := a.LayerCID(i); lc == old {
					t.Errorf("layer %d CID unchanged though the model's changed", i)
				}
			}
		})
	}

	// The tokenizer is part of the identity; cosmetic metadata is not.
	g, _ := ParseGGUF(orig)
	rewrite := func(key string, v any) *Model {
		md := NewMetadata(g.Meta.All()...)
		md.Set(key, v)
		var buf bytes.Buffer
		if err := WriteGGUF(&buf, md, sourcesOf(g.Tensors)...); err != nil {
			t.Fatal(err)
		}
		return load(buf.Bytes())
	}
	if c, _ := rewrite("general.name", "renamed").CID(); c != cidA {
		t.Error("renaming the model changed its CID")
	}
	tokens, _ := g.Meta.Strings("tokenizer.ggml.tokens")
	tokens = append([]string(nil), tokens...)
	tokens[299] = "changed"
	if c, _ := rewrite("tokenizer.ggml.tokens", tokens).CID(); c == cidA {
		t.Error("changing the vocabulary kept the CID")
	}
}

func TestCIDOfHFModel(t *testing.T) {
	gg, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	d := hfFromModel(gg, "LlamaForCausalLM")
	dir := d.write(t)
	cidOf := func() cid.Cid {
		m, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		c, err := m.CID()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := cidOf()
	if again := cidOf(); again != first {
		t.Errorf("two loads: %s and %s", first, again)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":{"type":"Unigram"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if cidOf() == first {
		t.Error("changing tokenizer.json kept the CID")
	}
}

func TestParseManifestErrors(t *testing.T) {
	m, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := m.Manifest()
	good := mf.Encode()
	edit := func(f func(*Manifest)) []byte {
		c := *mf
		c.Tensors = append([]TensorEntry(nil), mf.Tensors...)
		f(&c)
		return c.Encode()
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, `not a "imece/model-manifest/1"`},
		{"layer manifest", []byte(layerManifestTag), `not a "imece/model-manifest/1"`},
		{"truncated", good[:len(good)-1], "unexpected end of file"},
		{"trailing", append(bytes.Clone(good), 0), "1 bytes after the manifest"},
		{"oversized", make([]byte, maxManifest+1), "exceeds the limit"},
		{"architecture", edit(func(c *Manifest) { c.Config.Arch = "gpt2" }), `architecture "gpt2" is not supported`},
		{"config", edit(func(c *Manifest) { c.Config.KVHeads = 3 }), "KV head count 3"},
		{"missing tensor", edit(func(c *Manifest) { c.Tensors = c.Tensors[1:] }), "tensor token_embd.weight is missing"},
		{"duplicate", edit(func(c *Manifest) { c.Tensors = append(c.Tensors, c.Tensors[0]) }), `duplicate name "token_embd.weight"`},
		{"empty name", edit(func(c *Manifest) { c.Tensors[0].Name = "" }), "empty, invalid or duplicate name"},
		{"shape", edit(func(c *Manifest) { c.Tensors[4].Shape = []int64{64, 48} }), "has shape [64 48], want [64 64]"},
		{"dims", edit(func(c *Manifest) { c.Tensors[3].Shape = []int64{1, 1, 1, 1, 1} }), "has 5 dimensions"},
		{"zero dim", edit(func(c *Manifest) { c.Tensors[3].Shape = []int64{0, 64} }), "has shape [0 64]"},
		{"dtype", edit(func(c *Manifest) { c.Tensors[3].DType = 99 }), "unsupported tensor type type(99)"},
	}
	// A tensor count far beyond the bytes left.
	huge := bytes.Clone(good)
	countAt := bytes.Index(huge, []byte("token_embd.weight")) - 8 - 4
	huge[countAt+3] = 0x7f
	tests = append(tests, struct {
		name string
		data []byte
		want string
	}{"huge count", huge, "manifest claims"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}

func TestParseLayerManifestErrors(t *testing.T) {
	m, err := FromGGUF(synthBytes(t, tinyOptions()))
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := m.Manifest()
	lm, _ := mf.Layer(1)
	edit := func(f func(*LayerManifest)) []byte {
		c := *lm
		c.Tensors = append([]TensorEntry(nil), lm.Tensors...)
		f(&c)
		return c.Encode()
	}
	v0, _ := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"other layer's tensor", edit(func(c *LayerManifest) { c.Layer = 2 }), `layer manifest of layer 2 holds tensor "blk.1.attn_norm.weight"`},
		{"prefix of another layer", edit(func(c *LayerManifest) { c.Tensors[0].Name = "blk.10.attn_norm.weight" }), "holds tensor"},
		{"CIDv0", edit(func(c *LayerManifest) { c.Model = v0 }), "is not a model manifest CID"},
		{"no CID", edit(func(c *LayerManifest) { c.Model = cid.Undef }), "model CID"},
		{"model manifest", mf.Encode(), `not a "imece/layer-manifest/1"`},
		{"truncated", lm.Encode()[:60], "unexpected end of file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLayerManifest(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
		})
	}
}
