package model

import (
	"fmt"
	"strings"
)

// maxTokenizerBlob bounds a tokenizer received from a peer. The largest vocabularies
// in use (256K tokens with merges) encode to a few tens of megabytes.
const maxTokenizerBlob = 64 << 20

// TokenizerBlob is everything a model's tokenizer is built from, in one canonical
// byte string: the tokenizer.* metadata entries in order, encoded as GGUF encodes
// them (a u64 count, then key, type and value of each), followed by the
// HuggingFace tokenizer.json and tokenizer_config.json, each as a u64 length and its
// bytes (empty for GGUF files). A manifest commits to its SHA2-256, so a light client
// that fetches the blob from any peer can check it against the model's CID.
func TokenizerBlob(md Metadata, tokenizerJSON, tokenizerConfigJSON []byte) ([]byte, error) {
	var e ggufEncoder
	var kvs []KV
	for _, kv := range md.All() {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			kvs = append(kvs, kv)
		}
	}
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		if err := e.kv(kv); err != nil {
			return nil, err
		}
	}
	for _, b := range [][]byte{tokenizerJSON, tokenizerConfigJSON} {
		e.u64(uint64(len(b)))
		e.buf.Write(b)
	}
	return e.buf.Bytes(), nil
}

// ParseTokenizerBlob is the inverse of TokenizerBlob, for bytes from the network:
// bounded, and every length checked against what is left.
func ParseTokenizerBlob(b []byte) (md Metadata, tokenizerJSON, tokenizerConfigJSON []byte, err error) {
	if len(b) > maxTokenizerBlob {
		return Metadata{}, nil, nil, fmt.Errorf("%w: tokenizer of %d bytes exceeds %d", ErrFormat, len(b), maxTokenizerBlob)
	}
	r := &reader{buf: b}
	n := r.u64()
	if r.err == nil && n > uint64(len(b))/8 {
		return Metadata{}, nil, nil, fmt.Errorf("%w: tokenizer claims %d entries in %d bytes", ErrFormat, n, len(b))
	}
	md = Metadata{index: make(map[string]int, n)}
	for i := uint64(0); i < n && r.err == nil; i++ {
		key := r.str(maxNameLen)
		typ := r.u32()
		v := r.value(typ, 0)
		if r.err != nil {
			break
		}
		if !strings.HasPrefix(key, "tokenizer.") {
			return Metadata{}, nil, nil, fmt.Errorf("%w: tokenizer entry %q is not a tokenizer.* key", ErrFormat, key)
		}
		if _, dup := md.index[key]; dup {
			return Metadata{}, nil, nil, fmt.Errorf("%w: duplicate tokenizer entry %q", ErrFormat, key)
		}
		md.Set(key, v)
	}
	blob := func() []byte {
		l := r.u64()
		if r.err != nil {
			return nil
		}
		if l > uint64(len(r.buf)-r.off) {
			r.err = fmt.Errorf("%d-byte JSON exceeds the tokenizer", l)
			return nil
		}
		if l == 0 {
			return nil
		}
		return append([]byte(nil), r.take(int(l))...)
	}
	tokenizerJSON = blob()
	tokenizerConfigJSON = blob()
	if r.err != nil {
		return Metadata{}, nil, nil, fmt.Errorf("%w: tokenizer: %v", ErrFormat, r.err)
	}
	if r.off != len(b) {
		return Metadata{}, nil, nil, fmt.Errorf("%w: %d bytes after the tokenizer", ErrFormat, len(b)-r.off)
	}
	return md, tokenizerJSON, tokenizerConfigJSON, nil
}
