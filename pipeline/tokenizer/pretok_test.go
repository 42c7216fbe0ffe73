package tokenizer

import (
	"slices"
	"testing"
)

// TestFamiliesCompile: every pre-tokenizer family llama.cpp knows by name builds
// and splits text without losing a byte.
func TestFamiliesCompile(t *testing.T) {
	texts := append(randomTexts(200), extraTexts...)
	for name, fam := range families {
		p, err := newPreTokenizer(fam.regexes)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var sc pieceScratch
		for _, s := range texts {
			var joined string
			p.split(s, false, &sc, func(piece string) { joined += piece })
			if cp := string(appendCodepoints(s)); joined != cp {
				t.Errorf("%s: %q split lost text: %q", name, s, joined)
			}
		}
	}
}

func appendCodepoints(s string) []byte {
	var b []byte
	for _, r := range decodeCodepoints(s, nil) {
		b = appendCodepoint(b, r)
	}
	return b
}

// TestScannersMatchRegex: the hand-written GPT-2 and Llama 3 scanners split
// exactly as their expressions do when run through the generic (collapsed
// regexp2) path, on text built to hit their edge cases.
func TestScannersMatchRegex(t *testing.T) {
	cases := []struct {
		name   string
		expr   string
		custom func([]rune, []int, []int) []int
	}{
		{"gpt2", regexGPT2 + `|\s+`, splitGPT2},
		{"llama3", regexLlama3, splitLlama3},
		{"llama3-orig", regexLlama3Orig, splitLlama3},
	}
	texts := append(randomTexts(3000), extraTexts...)
	for _, c := range cases {
		src, err := collapseRegex(c.expr)
		if err != nil && c.name != "llama3-orig" {
			t.Fatal(err)
		}
		if c.name == "llama3-orig" {
			src, _ = collapseRegex(regexLlama3) // (?i:) is not ECMAScript; same language
		}
		p, err := newPreTokenizer([]string{"(?:" + c.expr + ")"})
		if err != nil {
			t.Fatalf("%s: %v (%s)", c.name, err, src)
		}
		var sc pieceScratch
		for _, s := range texts {
			cpts := decodeCodepoints(s, nil)
			if len(cpts) == 0 {
				continue
			}
			want := c.custom(cpts, []int{len(cpts)}, nil)
			var got []int
			p.split(s, false, &sc, func(piece string) { got = append(got, len(decodeCodepoints(piece, nil))) })
			if !slices.Equal(got, want) {
				t.Errorf("%s %q: regex %v, scanner %v", c.name, s, got, want)
			}
		}
	}
}
