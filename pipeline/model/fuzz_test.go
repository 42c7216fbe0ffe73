package model

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"testing"

	"github.com/imece/imece/kernels"
)

// Every decoder of untrusted bytes has a fuzz test (STYLE.md). Each checks, beyond
// "no panic", that an accepted input survives an encode/decode round trip, and that
// every rejection wraps ErrFormat. Run one with, for example,
//
//	go test ./pipeline/model -run '^$' -fuzz '^FuzzParseGGUF$' -fuzztime 5m
//
// and commit what it finds under testdata/fuzz.

// fuzzModels are the smallest valid models of each kind, as seeds.
func fuzzModels(t testing.TB) [][]byte {
	base := SynthOptions{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16, Vocab: 8, DType: kernels.F32, Seed: 1}
	q8 := base
	q8.Dim, q8.FFN, q8.Heads, q8.DType = 32, 32, 4, kernels.Q8_0
	moe := base
	moe.Experts, moe.ExpertsUsed = 2, 1
	var out [][]byte
	for _, o := range []SynthOptions{base, q8, moe} {
		out = append(out, synthBytes(t, o))
	}
	return out
}

func FuzzParseGGUF(f *testing.F) {
	for _, b := range fuzzModels(f) {
		f.Add(b)
	}
	var all bytes.Buffer
	if err := WriteGGUF(&all, allTypesMeta(), SourceOf(Tensor{Name: "x", Shape: []int64{2}, DType: kernels.F16, Data: []byte{1, 2, 3, 4}})); err != nil {
		f.Fatal(err)
	}
	f.Add(all.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGGUF(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		// What parses can be written, and writing is then a fixed point.
		var once, twice bytes.Buffer
		if err := WriteGGUF(&once, g.Meta, sourcesOf(g.Tensors)...); err != nil {
			t.Fatalf("writing a parsed file: %v", err)
		}
		g2, err := ParseGGUF(once.Bytes())
		if err != nil {
			t.Fatalf("parsing a written file: %v", err)
		}
		if err := WriteGGUF(&twice, g2.Meta, sourcesOf(g2.Tensors)...); err != nil {
			t.Fatalf("writing a parsed file: %v", err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatal("writing is not a fixed point")
		}
		m, err := FromGGUF(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		// A model that loads has a manifest that parses back to itself.
		mf, err := m.Manifest()
		if err != nil {
			t.Fatalf("manifest of a loaded model: %v", err)
		}
		back, err := ParseManifest(mf.Encode())
		if err != nil {
			t.Fatalf("parsing the manifest of a loaded model: %v", err)
		}
		if back.CID() != mf.CID() {
			t.Fatal("manifest CID changed in a round trip")
		}
	})
}

func FuzzParseSafetensors(f *testing.F) {
	for _, b := range fuzzModels(f) {
		g, err := ParseGGUF(b)
		if err != nil {
			f.Fatal(err)
		}
		if g.Tensors[0].DType != kernels.F32 {
			continue
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, map[string]string{"format": "pt"}, g.Tensors...); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(stFile(`{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1,2],"data_offsets":[2,6]}}`, 6))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseSafetensors(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, st.Meta, st.Tensors...); err != nil {
			t.Fatalf("writing a parsed file: %v", err)
		}
		back, err := ParseSafetensors(buf.Bytes())
		if err != nil {
			t.Fatalf("parsing a written file: %v", err)
		}
		if len(st.Meta) > 0 && !maps.Equal(back.Meta, st.Meta) {
			t.Fatalf("metadata %v became %v", st.Meta, back.Meta)
		}
		if len(back.Tensors) != len(st.Tensors) {
			t.Fatalf("%d tensors became %d", len(st.Tensors), len(back.Tensors))
		}
		for i, a := range st.Tensors {
			b := back.Tensors[i]
			if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("tensor %q changed in a round trip", a.Name)
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	for _, b := range fuzzModels(f) {
		m, err := FromGGUF(b)
		if err != nil {
			f.Fatal(err)
		}
		mf, err := m.Manifest()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mf.Encode())
		lm, err := mf.Layer(0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(lm.Encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// One corpus serves both decoders: the tags tell them apart.
		if mf, err := ParseManifest(data); err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
		} else {
			if !bytes.Equal(mf.Encode(), data) {
				t.Fatal("an accepted manifest is not in canonical form")
			}
			for i := range mf.Config.Layers {
				lm, err := mf.Layer(i)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ParseLayerManifest(lm.Encode()); err != nil {
					t.Fatalf("layer %d of an accepted manifest: %v", i, err)
				}
			}
		}
		if lm, err := ParseLayerManifest(data); err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
		} else if !bytes.Equal(lm.Encode(), data) {
			t.Fatal("an accepted layer manifest is not in canonical form")
		}
	})
}
