package tokenizer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imece/imece/pipeline/model"
)

// vocabs are the vocabulary files under testdata, by short name.
var vocabs = map[string]string{
	"llama-spm":      "ggml-vocab-llama-spm.gguf",
	"gpt-2":          "ggml-vocab-gpt-2.gguf",
	"phi-3":          "ggml-vocab-phi-3.gguf",
	"falcon":         "ggml-vocab-falcon.gguf",
	"starcoder":      "ggml-vocab-starcoder.gguf",
	"refact":         "ggml-vocab-refact.gguf",
	"mpt":            "ggml-vocab-mpt.gguf",
	"deepseek-coder": "ggml-vocab-deepseek-coder.gguf",
	"stories260K":    "stories260K.gguf",
}

var loaded sync.Map // name → *Tokenizer

func load(t testing.TB, name string) *Tokenizer {
	t.Helper()
	if tk, ok := loaded.Load(name); ok {
		return tk.(*Tokenizer)
	}
	data, err := os.ReadFile(filepath.Join("testdata", vocabs[name]))
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.ParseGGUF(data)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := FromGGUF(g.Meta)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	loaded.Store(name, tk)
	return tk
}

// readSuite reads llama.cpp's X.gguf.inp/.out pair.
func readSuite(t *testing.T, file string) (texts []string, want [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(filepath.Join("testdata", file+".inp"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(filepath.Join("testdata", file+".out"))
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	texts = strings.Split(string(inp), sep)
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%d texts but %d expected lines", len(texts), len(lines))
	}
	for _, l := range lines {
		var ids []int32
		for _, f := range strings.Fields(l) {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, int32(v))
		}
		want = append(want, ids)
	}
	return texts, want
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLlamaCppSuites runs llama.cpp's test-tokenizer-0 data: every case exact,
// tokenized with add_special=false, parse_special=false.
func TestLlamaCppSuites(t *testing.T) {
	for _, name := range []string{"llama-spm", "gpt-2"} {
		t.Run(name, func(t *testing.T) {
			tk := load(t, name)
			texts, want := readSuite(t, vocabs[name])
			pass := 0
			for i, text := range texts {
				got := tk.Encode(text, false)
				if !equalIDs(got, want[i]) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, text, got, want[i])
					continue
				}
				pass++
			}
			t.Logf("%s: %d/%d cases exact", name, pass, len(texts))
		})
	}
}
