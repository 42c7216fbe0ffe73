package model

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/imece/imece/assets"
)

func TestTokenizerBlobRoundTrip(t *testing.T) {
	m, err := FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := TokenizerBlob(m.Meta, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := m.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(blob) != mf.Tokenizer {
		t.Fatal("the manifest does not commit to the tokenizer blob")
	}
	md, tj, tc, err := ParseTokenizerBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	if tj != nil || tc != nil {
		t.Fatal("GGUF tokenizer came back with JSON")
	}
	again, _ := TokenizerBlob(md, tj, tc)
	if !bytes.Equal(blob, again) {
		t.Fatal("parse and re-encode changed the tokenizer")
	}
	toks, ok := md.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 {
		t.Fatalf("tokens: %d", len(toks))
	}
	if _, ok := md.Get("general.architecture"); ok {
		t.Fatal("non-tokenizer metadata in the blob")
	}

	withJSON, _ := TokenizerBlob(NewMetadata(), []byte(`{"model":{}}`), []byte(`{"bos_token":"<s>"}`))
	_, tj, tc, err = ParseTokenizerBlob(withJSON)
	if err != nil || string(tj) != `{"model":{}}` || string(tc) != `{"bos_token":"<s>"}` {
		t.Fatalf("JSON tokenizer: %q %q %v", tj, tc, err)
	}
	for n := 0; n < len(withJSON); n++ {
		if _, _, _, err := ParseTokenizerBlob(withJSON[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated at %d: %v", n, err)
		}
	}
	if _, _, _, err := ParseTokenizerBlob(append(withJSON, 0)); !errors.Is(err, ErrFormat) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func FuzzParseTokenizerBlob(f *testing.F) {
	m, _ := FromGGUF(assets.DefaultModel)
	blob, _ := TokenizerBlob(m.Meta, nil, nil)
	f.Add(blob)
	j, _ := TokenizerBlob(NewMetadata(), []byte("{}"), nil)
	f.Add(j)
	f.Fuzz(func(t *testing.T, b []byte) {
		md, tj, tc, err := ParseTokenizerBlob(b)
		if err != nil {
			return
		}
		again, err := TokenizerBlob(md, tj, tc)
		if err != nil {
			t.Fatalf("parsed blob does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("re-encoding differs")
		}
	})
}
