package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/tokenizer"
)

// script is a Runner that makes the model "say" a fixed sequence of tokens: its
// logits put all weight on the next one. It tests the generation loop alone.
type script struct {
	says   []int32
	i      int
	calls  [][]int32
	maxLen int
}

func (s *script) Forward(ctx context.Context, tokens []int32, logits []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.calls = append(s.calls, append([]int32(nil), tokens...))
	for i := range logits {
		logits[i] = 0
	}
	logits[s.says[s.i]] = 10
	s.i++
	return nil
}

func storiesTokenizer(t *testing.T) *tokenizer.Tokenizer {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := TokenizerFor(m)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGenerateLoop(t *testing.T) {
	tok := storiesTokenizer(t)
	id := func(s string) int32 {
		i, ok := tok.TokenID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		return i
	}
	e1, e2 := id("<0xC3>"), id("<0xA9>") // "é" split over two byte tokens
	tests := []struct {
		name       string
		says       []int32
		maxTokens  int
		wantText   []string // pieces as streamed
		wantFinish Finish
		wantMaxLen int
	}{
		{"stops at EOS", []int32{id("▁Once"), tok.EOS(), id("▁time")}, 10, []string{" Once"}, FinishEOS, 5 + 10 - 1},
		{"stops at max tokens", []int32{id("▁Once"), id("▁upon"), id("▁a")}, 2, []string{" Once", " upon"}, FinishLength, 5 + 2 - 1},
		{"holds split characters", []int32{e1, e2, id("▁a"), tok.EOS()}, 10, []string{"é", " a"}, FinishEOS, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{says: tt.says}
			var pieces []string
			res, err := Generate(context.Background(), func(_ context.Context, maxLen int) (Runner, error) {
				s.maxLen = maxLen
				return s, nil
			}, tok, Request{
				Prompt: "Once upon a time", MaxTokens: tt.maxTokens,
				OnText: func(p string) error {
					if !utf8.ValidString(p) {
						t.Errorf("streamed invalid UTF-8 %q", p)
					}
					pieces = append(pieces, p)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(pieces, "|") != strings.Join(tt.wantText, "|") || res.Finish != tt.wantFinish {
				t.Errorf("pieces %q finish %s, want %q %s", pieces, res.Finish, tt.wantText, tt.wantFinish)
			}
			if s.maxLen != tt.wantMaxLen {
				t.Errorf("opened a sequence of %d positions, want %d", s.maxLen, tt.wantMaxLen)
			}
			// The prompt goes in one batch (BOS included), then one token per call.
			if len(s.calls[0]) != 5 || s.calls[0][0] != tok.BOS() {
				t.Errorf("prefill call %v", s.calls[0])
			}
			for _, c := range s.calls[1:] {
				if len(c) != 1 {
					t.Errorf("decode call with %d tokens", len(c))
				}
			}
		})
	}
}

func TestGenerateStopsOnCallbackErrorAndCancel(t *testing.T) {
	tok := storiesTokenizer(t)
	word, _ := tok.TokenID("▁Once")
	s := &script{says: []int32{word, word, word, word}}
	open := func(context.Context, int) (Runner, error) { return s, nil }
	stop := errors.New("reader went away")
	_, err := Generate(context.Background(), open, tok, Request{Prompt: "x", MaxTokens: 4, OnText: func(string) error { return stop }})
	if !errors.Is(err, stop) || len(s.calls) != 1 {
		t.Fatalf("err %v after %d calls, want the callback's error after 1", err, len(s.calls))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s = &script{says: []int32{word}}
	if _, err := Generate(ctx, open, tok, Request{Prompt: "x", MaxTokens: 4}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled generation: %v", err)
	}
	if _, err := Generate(context.Background(), open, tok, Request{Prompt: "x", MaxTokens: 0}); err == nil {
		t.Fatal("MaxTokens 0 accepted")
	}
}

func TestLocalNeedsWholeModel(t *testing.T) {
	m, _ := model.FromGGUF(assets.DefaultModel)
	be := newCPU(t)
	st, err := llama.NewStage(m, be, llama.WithLayers(0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(st, 10); err == nil {
		t.Fatal("local runner on a partial stage")
	}
}

// TestGenerateSpecial: a rendered chat prompt has its control tokens parsed and
// its BOS not doubled; plain prompts keep such text as text.
func TestGenerateSpecial(t *testing.T) {
	tok := storiesTokenizer(t)
	bos := tok.BOS()
	tests := []struct {
		name    string
		prompt  string
		special bool
		wantBOS int // BOS tokens in the prefill
	}{
		{"plain text keeps <s> as text", "<s>Once", false, 1},
		{"special parses <s> without doubling it", "<s>Once", true, 1},
		{"special without <s> still adds one", "Once", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{says: []int32{tok.EOS()}}
			_, err := Generate(context.Background(), func(context.Context, int) (Runner, error) { return s, nil },
				tok, Request{Prompt: tt.prompt, MaxTokens: 4, Special: tt.special})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, id := range s.calls[0] {
				if id == bos {
					n++
				}
			}
			if n != tt.wantBOS || s.calls[0][0] != bos {
				t.Errorf("prefill %v has %d BOS, want %d first", s.calls[0], n, tt.wantBOS)
			}
			if want := tok.EncodeWith(tt.prompt, tokenizer.EncodeOptions{AddSpecial: true}); !tt.special && len(s.calls[0]) != len(want) {
				t.Errorf("plain prefill %v, want %v", s.calls[0], want)
			}
		})
	}
}
