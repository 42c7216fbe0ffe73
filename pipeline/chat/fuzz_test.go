package chat

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzTemplate: any source parses or fails with an error, and what parses
// renders or fails with an error, within the limits; never a panic or a hang.
// The seed corpus is the real templates plus testdata/fuzz/FuzzTemplate.
func FuzzTemplate(f *testing.F) {
	paths, _ := filepath.Glob("testdata/templates/*.jinja")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add(DefaultSource)
	msgs := []Message{{"system", "s"}, {"user", "u"}, {"assistant", "a"}, {"user", "u2"}}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Parse(src)
		if err != nil {
			return
		}
		out, err := tmpl.Render(Input{Messages: msgs, BOS: "<s>", EOS: "</s>", AddGenerationPrompt: true})
		if err == nil && len(out) > maxOutput {
			t.Fatalf("output of %d bytes passed the limit", len(out))
		}
	})
}
