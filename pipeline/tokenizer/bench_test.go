package tokenizer

import (
	"strings"
	"testing"
)

// benchText is a few KB of mixed prose, code and numbers.
func benchText(b *testing.B) string {
	texts, _ := readSuite(&testing.T{}, vocabs["llama-spm"])
	s := strings.Join(append(texts, extraTexts...), "\n")
	for len(s) < 4096 {
		s += "\n" + s
	}
	return s
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"llama-spm", "gpt-2", "falcon", "starcoder", "deepseek-coder", "mpt"} {
		b.Run(name, func(b *testing.B) {
			tk := load(b, name)
			s := benchText(b)
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				tk.Encode(s, true)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	tk := load(b, "llama-spm")
	s := benchText(b)
	ids := tk.Encode(s, false)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		tk.Decode(ids)
	}
}
