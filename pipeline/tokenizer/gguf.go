package tokenizer

import (
	"fmt"
	"strings"
)

// Metadata is the read-only view of GGUF key/values the tokenizer needs.
// pipeline/model's Metadata satisfies it; the interface lives here so this
// package imports no model code.
type Metadata interface {
	String(key string) (string, bool)
	Strings(key string) ([]string, bool)
	Float32s(key string) ([]float32, bool)
	Int32s(key string) ([]int32, bool)
	Uint(key string) (uint64, bool)
	Bool(key string) (bool, bool)
}

// FromGGUF builds the tokenizer described by a model file's tokenizer.ggml.*
// metadata, with llama.cpp's defaults for every key the file leaves out.
func FromGGUF(md Metadata) (*Tokenizer, error) {
	const p = "tokenizer.ggml."
	s := &spec{ids: map[string]uint64{}}
	var ok bool
	if s.model, ok = md.String(p + "model"); !ok {
		return nil, fmt.Errorf("%w: missing %smodel", ErrInvalid, p)
	}
	s.pre, _ = md.String(p + "pre")
	if s.tokens, ok = md.Strings(p + "tokens"); !ok {
		return nil, fmt.Errorf("%w: missing or non-string %stokens", ErrInvalid, p)
	}
	if sc, ok := md.Float32s(p + "scores"); ok {
		s.scores = sc
	} else if isc, ok := md.Int32s(p + "scores"); ok {
		s.scores = make([]float32, len(isc))
		for i, v := range isc {
			s.scores[i] = float32(v)
		}
	}
	s.types, _ = md.Int32s(p + "token_type")
	if s.model == "gpt2" {
		merges, ok := md.Strings(p + "merges")
		if !ok {
			return nil, fmt.Errorf("%w: missing %smerges", ErrInvalid, p)
		}
		s.merges = make([][2]string, len(merges))
		for i, m := range merges {
			// llama.cpp splits at the first space after the first byte; a merge
			// without one becomes ("", "") and can never apply.
			if len(m) > 1 {
				if j := strings.IndexByte(m[1:], ' '); j >= 0 {
					s.merges[i] = [2]string{m[:j+1], m[j+2:]}
				}
			}
		}
	}
	for _, k := range specialKeys {
		if v, ok := md.Uint(p + k); ok {
			s.ids[k] = v
		}
	}
	boolKey := func(k string) *bool {
		if v, ok := md.Bool(p + k); ok {
			return &v
		}
		return nil
	}
	s.addSpacePrefix = boolKey("add_space_prefix")
	s.addBOS = boolKey("add_bos_token")
	s.addEOS = boolKey("add_eos_token")
	s.name, _ = md.String("general.name")
	s.arch, _ = md.String("general.architecture")
	return build(s)
}
