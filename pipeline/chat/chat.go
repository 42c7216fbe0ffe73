package chat

import (
	"fmt"
	"strings"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // "system", "user" or "assistant"
	Content string
}

// Input is what a template renders: the conversation and the variables
// HuggingFace's apply_chat_template passes.
type Input struct {
	Messages []Message
	// BOS and EOS are the text of the model's special tokens (bos_token,
	// eos_token), e.g. "<s>" and "</s>".
	BOS, EOS string
	// AddGenerationPrompt asks the template to end with the opening of an
	// assistant turn, so the model answers rather than continues the user.
	AddGenerationPrompt bool
}

// Template is a parsed chat template, safe for concurrent use.
type Template struct {
	src  string
	body []node
}

// DefaultSource is the template for models that carry none (see the package
// documentation): the messages' contents separated by blank lines.
const DefaultSource = `{%- for message in messages -%}
{%- if not loop.first %}{{ '\n\n' }}{% endif -%}
{{ message.content }}
{%- endfor -%}`

// Default returns the template used for models without one.
func Default() *Template {
	t, err := Parse(DefaultSource)
	if err != nil {
		panic(fmt.Sprintf("chat: the default template does not parse: %v", err)) // a constant: a bug, caught by the tests
	}
	return t
}

// Parse compiles a Jinja chat template. Errors wrap ErrSyntax or
// ErrUnsupported.
func Parse(src string) (*Template, error) {
	// Jinja2 drops a single trailing newline (keep_trailing_newline off).
	trimmed := strings.TrimSuffix(src, "\n")
	toks, err := lex(trimmed)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	body, _, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	return &Template{src: src, body: body}, nil
}

// Source is the template's text.
func (t *Template) Source() string { return t.src }

// Render produces the prompt for in. A raise_exception in the template gives
// an error wrapping ErrRaised.
func (t *Template) Render(in Input) (string, error) {
	msgs := make([]any, len(in.Messages))
	for i, m := range in.Messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	sc := &scope{vars: map[string]any{
		"messages":              msgs,
		"bos_token":             in.BOS,
		"eos_token":             in.EOS,
		"add_generation_prompt": in.AddGenerationPrompt,
	}}
	var e evaluator
	if err := e.exec(t.body, sc); err != nil {
		return "", err
	}
	return e.out.String(), nil
}
