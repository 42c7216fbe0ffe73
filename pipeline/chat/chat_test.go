package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type conversation struct {
	Name                string    `json:"name"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
	Messages            []Message `json:"messages"`
}

// TestRealTemplates renders the chat templates of real model families and
// compares with what Jinja2 in HuggingFace's environment renders
// (testdata/gen_golden.py wrote testdata/golden.json).
func TestRealTemplates(t *testing.T) {
	var convs []conversation
	readJSON(t, "testdata/conversations.json", &convs)
	var golden map[string]map[string]string
	readJSON(t, "testdata/golden.json", &golden)
	paths, err := filepath.Glob("testdata/templates/*.jinja")
	if err != nil || len(paths) < 7 {
		t.Fatalf("templates: %v %v", paths, err)
	}
	for _, path := range paths {
		name := filepath.Base(path)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := Parse(string(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range convs {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				want, ok := golden[name][c.Name]
				if !ok {
					t.Fatal("no golden output")
				}
				got, err := tmpl.Render(Input{Messages: c.Messages, BOS: "<s>", EOS: "</s>", AddGenerationPrompt: c.AddGenerationPrompt})
				if msg, isErr := strings.CutPrefix(want, "ERROR: "); isErr {
					if !errors.Is(err, ErrRaised) || !strings.Contains(err.Error(), msg) {
						t.Fatalf("err = %v, want the template's exception %q", err, msg)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("got  %q\nwant %q", got, want)
				}
			})
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDefault(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{"one message is its text", []Message{{"user", "Once upon a time"}}, "Once upon a time"},
		{"messages are paragraphs", []Message{{"system", "Be kind."}, {"user", "Hi"}}, "Be kind.\n\nHi"},
		{"no messages", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Default().Render(Input{Messages: tt.msgs, AddGenerationPrompt: true})
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src string
		parse     error // at Parse
		render    error // at Render, when Parse succeeds
	}{
		{"macro", "{% macro f() %}x{% endmacro %}", ErrUnsupported, nil},
		{"block set", "{% set x %}y{% endset %}", ErrUnsupported, nil},
		{"unknown filter", "{{ 'a' | frobnicate }}", nil, ErrUnsupported},
		{"unknown test", "{{ 'a' is frob }}", nil, ErrUnsupported},
		{"unclosed if", "{% if true %}x", ErrSyntax, nil},
		{"unclosed tag", "{{ 'a' ", ErrSyntax, nil},
		{"unterminated string", "{{ 'a }}", ErrSyntax, nil},
		{"bad character", "{{ a ; b }}", ErrSyntax, nil},
		{"deep nesting", strings.Repeat("{% if true %}", 100), ErrSyntax, nil},
		{"deep expression", "{{ " + strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200) + " }}", ErrSyntax, nil},
		{"raise", "{{ raise_exception('no system role') }}", nil, ErrRaised},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse(tt.src)
			if tt.parse != nil {
				if !errors.Is(err, tt.parse) {
					t.Fatalf("Parse: %v, want %v", err, tt.parse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tmpl.Render(Input{}); !errors.Is(err, tt.render) {
				t.Fatalf("Render: %v, want %v", err, tt.render)
			}
		})
	}
}

func TestBounded(t *testing.T) {
	tests := []string{
		"{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}",
		"{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
		"{{ 'x' * 100000000 }}",
	}
	for _, src := range tests {
		tmpl, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tmpl.Render(Input{}); err == nil {
			t.Errorf("%q rendered without hitting a limit", src)
		}
	}
}
