package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// extraTexts exercise the family-specific rules beyond llama.cpp's suite: digit
// grouping, contractions, newlines, punctuation runs, CJK, special-token text.
var extraTexts = []string{
	"1 12 123 1234 12345 1234567",
	"3.14159 and 1,000,000 and x2y34z567",
	"don't I'll we've they're she'd it's I'm DON'T You'LL",
	"a\nb\n\nc\r\n\r\nd \n e  \n\n  f",
	"Hello, world!!! (a+b)=c; x->y <= z ~~ `code` $5 ^2 |pipe| 50%",
	"a+=b&&c||d",
	"   leading and trailing   ",
	"\t\ttabs\tand\u00a0nbsp\u3000ideographic",
	"中文字符 and 한국어 and 日本語のテキスト",
	"emoji 🦙🔥 and ß ü é ñ Ω",
	"mixed123abc456 ١٢٣ ²³",
	"<s> </s> <|endoftext|> <|end|> <fim_prefix>",
	"def f(x):\n    return x ** 2  # square\n",
	"\n",
	" ",
	"x",
}

func allTexts(t *testing.T) []string {
	texts, _ := readSuite(t, vocabs["llama-spm"])
	return append(texts, extraTexts...)
}

// TestRoundTrip checks Decode(Encode(s)) == s on every vocabulary.
func TestRoundTrip(t *testing.T) {
	texts := allTexts(t)
	for name := range vocabs {
		t.Run(name, func(t *testing.T) {
			tk := load(t, name)
			for _, s := range texts {
				if got := tk.Decode(tk.Encode(s, false)); got != s {
					t.Errorf("%q: round trip gave %q", s, got)
				}
			}
		})
	}
}

// TestStories260K: the reference model's prompt, as llama.cpp tokenizes it.
func TestStories260K(t *testing.T) {
	tk := load(t, "stories260K")
	got := tk.Encode("Once upon a time", true)
	want := []int32{1, 403, 407, 261, 378} // <s> ▁Once ▁upon ▁a ▁time
	if !equalIDs(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// llama.cpp keeps the space after BOS; without BOS the prefix space goes.
	if s := tk.Decode(got); s != " Once upon a time" {
		t.Errorf("Decode with BOS = %q", s)
	}
	if s := tk.Decode(got[1:]); s != "Once upon a time" {
		t.Errorf("Decode without BOS = %q", s)
	}
	if tk.BOS() != 1 || tk.EOS() != 2 || !tk.IsEOG(2) || tk.VocabSize() != 512 || !tk.AddsBOS() || tk.AddsEOS() {
		t.Errorf("specials: bos %d eos %d vocab %d", tk.BOS(), tk.EOS(), tk.VocabSize())
	}
}

// pieces returns the pre-tokenizer's output for text, byte-level encoded.
func pieces(tk *Tokenizer, text string) []string {
	var out []string
	var sc pieceScratch
	tk.pretok.split(text, false, &sc, func(p string) { out = append(out, p) })
	return out
}

// TestPreTokenizerRules pins each family's splitting rules on hand-derived cases.
func TestPreTokenizerRules(t *testing.T) {
	cases := []struct {
		vocab, text string
		want        []string
	}{
		// GPT-2: digit runs stay whole, contractions split, "\s+(?!\S)".
		{"gpt-2", "abc 123 4567", []string{"abc", " 123", " 4567"}},
		{"gpt-2", "don't I'll", []string{"don", "'t", " I", "'ll"}},
		{"gpt-2", "a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"gpt-2", "a   b", []string{"a", "  ", " b"}},
		{"gpt-2", "x  ", []string{"x", "  "}},
		{"gpt-2", "Hi!! ok", []string{"Hi", "!!", " ok"}},
		{"mpt", "abc 123", []string{"abc", " 123"}},
		// StarCoder/Refact: every digit alone, then GPT-2.
		{"starcoder", "abc 123 4567", []string{"abc", " ", "1", "2", "3", " ", "4", "5", "6", "7"}},
		{"refact", "x2 y", []string{"x", "2", " y"}},
		// Falcon: punctuation runs isolated first, then GPT-2, then 3-digit groups.
		{"falcon", "abc 123 4567", []string{"abc", " ", "123", " ", "456", "7"}},
		{"falcon", "Hello, world!!", []string{"Hello", ",", " world", "!!"}},
		{"falcon", "a+=b", []string{"a", "+=", "b"}},
		{"falcon", "x ~~ y", []string{"x", " ", "~~", " y"}},
		// DeepSeek Coder: newlines alone, letters with one leading space, punctuation
		// runs, CJK runs, single digits.
		{"deepseek-coder", "Hello world\n\n123", []string{"Hello", " world", "\n", "\n", "1", "2", "3"}},
		{"deepseek-coder", "a, b!", []string{"a", ",", " b", "!"}},
		{"deepseek-coder", "中文 ok", []string{"中文", " ok"}},
		{"deepseek-coder", "a  b", []string{"a", " ", " b"}},
	}
	for _, c := range cases {
		got := pieces(load(t, c.vocab), c.text)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s %q: got %q, want %q", c.vocab, c.text, got, c.want)
		}
	}
}

// TestPhi3MatchesLlama: phi-3's vocabulary is Llama 2's plus chat tokens, so on
// text without those tokens both must agree id for id.
func TestPhi3MatchesLlama(t *testing.T) {
	phi, llama := load(t, "phi-3"), load(t, "llama-spm")
	for id := int32(3); id < 32000; id++ {
		if phi.TokenText(id) != llama.TokenText(id) || phi.Score(id) != llama.Score(id) {
			t.Fatalf("token %d differs: %q/%v vs %q/%v", id, phi.TokenText(id), phi.Score(id), llama.TokenText(id), llama.Score(id))
		}
	}
	for _, s := range allTexts(t) {
		if strings.Contains(s, "</s>") {
			continue // user-defined in phi-3
		}
		if a, b := phi.Encode(s, false), llama.Encode(s, false); !equalIDs(a, b) {
			t.Errorf("%q: phi-3 %v, llama %v", s, a, b)
		}
	}
}

// TestSpecialTokens covers BOS/EOS, parse_special and phi-3's RSTRIP.
func TestSpecialTokens(t *testing.T) {
	phi := load(t, "phi-3")
	end, _ := phi.TokenID("<|end|>")
	user, _ := phi.TokenID("<|user|>")
	got := phi.EncodeWith("<|user|>\nHi<|end|>\n", EncodeOptions{AddSpecial: true, ParseSpecial: true})
	// RSTRIP eats the newlines after the markers; the text after a special token
	// gets the space prefix again.
	hi := phi.Encode("Hi", false)
	want := append(append([]int32{phi.BOS(), user}, hi...), end)
	if !equalIDs(got, want) {
		t.Errorf("phi-3 chat: got %v, want %v", got, want)
	}
	if plain := phi.Encode("<|end|>", false); len(plain) < 2 {
		t.Errorf("without ParseSpecial <|end|> must stay text, got %v", plain)
	}
	if !phi.IsEOG(end) || !phi.IsEOG(phi.EOS()) {
		t.Errorf("phi-3 EOG = %v", phi.EOG())
	}
	if s := phi.DecodeWith(got, DecodeOptions{RenderSpecial: true}); s != "<s><|user|> Hi<|end|>" {
		t.Errorf("render special: %q", s)
	}
	gpt := load(t, "gpt-2")
	if ids := gpt.Encode("hello", true); len(ids) != 1 {
		t.Errorf("gpt-2 adds no BOS by default, got %v", ids)
	}
	if ids := gpt.EncodeWith("a<|endoftext|>", EncodeOptions{ParseSpecial: true}); len(ids) != 2 || ids[1] != 50256 {
		t.Errorf("gpt-2 parse special: %v", ids)
	}
	ds := load(t, "deepseek-coder")
	if ids := ds.Encode("x", true); ids[0] != 32013 {
		t.Errorf("deepseek-coder BOS: %v", ids)
	}
}

// TestDecoderStreaming: streamed output equals Decode, and no chunk ends inside
// a UTF-8 character.
func TestDecoderStreaming(t *testing.T) {
	texts := allTexts(t)
	for _, name := range []string{"llama-spm", "gpt-2", "deepseek-coder", "stories260K"} {
		tk := load(t, name)
		for _, s := range texts {
			ids := tk.Encode(s, true)
			d := tk.NewDecoder(DecodeOptions{})
			var b strings.Builder
			for _, id := range ids {
				chunk := d.Next(id)
				if !utf8.ValidString(chunk) && utf8.ValidString(s) {
					t.Errorf("%s %q: chunk %q splits a character", name, s, chunk)
				}
				b.WriteString(chunk)
			}
			b.WriteString(d.Flush())
			if want := tk.Decode(ids); b.String() != want {
				t.Errorf("%s %q: streamed %q, Decode %q", name, s, b.String(), want)
			}
		}
	}
	// A character split over byte-fallback tokens is held until complete.
	tk := load(t, "stories260K")
	d := tk.NewDecoder(DecodeOptions{KeepLeadingSpace: true})
	ids := tk.Encode("🦙", false) // ▁ then four <0xNN>
	var got []string
	for _, id := range ids {
		got = append(got, d.Next(id))
	}
	if strings.Join(got, "") != " 🦙" || got[len(got)-1] != "🦙" {
		t.Errorf("held bytes: %q", got)
	}
}

func TestCleanSpaces(t *testing.T) {
	gpt := load(t, "gpt-2")
	ids := gpt.Encode("Hello , world . I 'm here ' ok", false)
	if s := gpt.DecodeWith(ids, DecodeOptions{CleanSpaces: true}); s != "Hello, world. I'm here'ok" {
		t.Errorf("clean spaces: %q", s)
	}
}

func TestBadInput(t *testing.T) {
	bad := []string{"\xff\xfe", "a\x00b", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", strings.Repeat("\x80", 100)}
	for name := range vocabs {
		tk := load(t, name)
		for _, s := range bad {
			ids := tk.Encode(s, true)
			_ = tk.Decode(ids)
			if tk.Kind() == SPM {
				if got := tk.Decode(tk.Encode(s, false)); got != s {
					t.Errorf("%s %q: SPM byte fallback must round-trip, got %q", name, s, got)
				}
			}
		}
		_ = tk.Decode([]int32{-5, 1 << 30})
	}
}

// TestLongInput guards against quadratic behaviour: runs of one character are the
// worst case for merge queues and backtracking regexes.
func TestLongInput(t *testing.T) {
	long := strings.Repeat("a", 20000) + strings.Repeat(" ", 10000) + strings.Repeat("1", 5000) + strings.Repeat("\n \n", 2000)
	for name := range vocabs {
		tk := load(t, name)
		if got := tk.Decode(tk.Encode(long, false)); got != long {
			t.Errorf("%s: long round trip failed", name)
		}
	}
}

// hfFromGGUF writes a byte-level vocabulary as a tokenizer.json.
func hfFromGGUF(t *testing.T, tk *Tokenizer, merges []string) []byte {
	vocab := map[string]int32{}
	var added []map[string]any
	for id := int32(0); id < int32(tk.VocabSize()); id++ {
		if tk.IsControl(id) {
			added = append(added, map[string]any{"id": id, "content": tk.TokenText(id), "special": true})
			continue
		}
		vocab[tk.TokenText(id)] = id
	}
	doc := map[string]any{
		"added_tokens":  added,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFromHFJSON: the GPT-2 vocabulary written as a tokenizer.json passes the
// same suite; a tiny SentencePiece-style file merges by rank with byte fallback.
func TestFromHFJSON(t *testing.T) {
	gpt := load(t, "gpt-2")
	merges := make([]string, 0, len(gpt.ranks))
	byRank := make([]string, len(gpt.ranks))
	for k, r := range gpt.ranks {
		byRank[r] = strings.Replace(k, "\x00", " ", 1)
	}
	merges = append(merges, byRank...)
	hf, err := FromHFJSON(hfFromGGUF(t, gpt, merges))
	if err != nil {
		t.Fatal(err)
	}
	texts, want := readSuite(t, vocabs["gpt-2"])
	for i, s := range texts {
		if got := hf.Encode(s, false); !equalIDs(got, want[i]) {
			t.Errorf("%q: got %v want %v", s, got, want[i])
		}
	}

	spm := `{"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],
	"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
	"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}]},
	"model":{"type":"BPE","byte_fallback":true,"unk_token":"<unk>","vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0xC3>":3,"<0xA9>":4,"▁":5,"a":6,"b":7,"ab":8,"▁ab":9,"▁a":10},
	"merges":[["a","b"],"▁ ab","▁ a"]}}`
	tk, err := FromHFJSON([]byte(spm))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("ab aé", true); !equalIDs(got, []int32{1, 9, 10, 3, 4}) {
		t.Errorf("SPM-style tokenizer.json: %v", got)
	}
	if s := tk.Decode(tk.Encode("ab aé", false)); s != "ab aé" {
		t.Errorf("decode: %q", s)
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"model":{"type":"Unigram"}}`, `{"model":{"type":"BPE","vocab":{"a":99999999}}}`,
		`{"model":{"type":"BPE","vocab":{"a":0},"merges":[3]}}`, `{"model":{"type":"BPE","vocab":{"a":0,"b":0}}}`} {
		if _, err := FromHFJSON([]byte(bad)); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
}
