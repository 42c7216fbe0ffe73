package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncode: any input encodes without panicking on every vocabulary, and valid
// UTF-8 round-trips on the SPM and GPT-2 vocabularies. (Invalid UTF-8 need not:
// in SPM a stray lead byte can swallow part of a following "▁", which then comes
// back as byte tokens and decodes as "▁", exactly as in llama.cpp.)
func FuzzEncode(f *testing.F) {
	for _, s := range extraTexts {
		f.Add(s, false)
	}
	f.Add("\xff\x00<s>\xe2\x96", true)
	names := []string{"llama-spm", "gpt-2", "falcon", "starcoder", "mpt", "deepseek-coder", "phi-3"}
	tks := make([]*Tokenizer, len(names))
	for i, n := range names {
		tks[i] = load(f, n)
	}
	f.Fuzz(func(t *testing.T, s string, special bool) {
		for i, tk := range tks {
			ids := tk.EncodeWith(s, EncodeOptions{AddSpecial: special, ParseSpecial: special})
			for _, id := range ids {
				if id < 0 || int(id) >= tk.VocabSize() {
					t.Fatalf("%s: id %d out of range", names[i], id)
				}
			}
			_ = tk.Decode(ids)
			if special || (names[i] != "llama-spm" && names[i] != "gpt-2") {
				continue
			}
			if !utf8.ValidString(s) {
				continue
			}
			if got := tk.Decode(ids); got != s {
				t.Fatalf("%s: %q round-tripped to %q", names[i], s, got)
			}
		}
	})
}

// FuzzFromHFJSON: malformed tokenizer.json gets an error, never a panic, and
// whatever loads can encode.
func FuzzFromHFJSON(f *testing.F) {
	f.Add(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}`)
	f.Add(`{"model":{"type":"BPE","byte_fallback":true,"vocab":{"<0x41>":0,"▁":1},"merges":[]},"added_tokens":[{"id":2,"content":"<s>","special":true}]}`)
	f.Add(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a"]]},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{N}{1,3}"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}}`)
	f.Add(`{"model":{"type":"BPE","vocab":{"a":-1}}}`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, doc string) {
		tk, err := FromHFJSON([]byte(doc))
		if err != nil {
			return
		}
		ids := tk.EncodeWith("Hello 123 wörld!\n"+strings.Repeat("a", 3), EncodeOptions{AddSpecial: true, ParseSpecial: true})
		_ = tk.Decode(ids)
	})
}
