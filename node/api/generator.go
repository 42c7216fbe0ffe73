package api

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/chat"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/tokenizer"
)

// Generator is the back end the API generates with: the mesh (Mesh), a whole
// model in this process (Local), or either behind a fallback endpoint
// (WithFallback).
type Generator interface {
	// Models lists the models the generator can serve now.
	Models(ctx context.Context) []Model
	// Generate runs one request, streaming its text to req.OnText.
	Generate(ctx context.Context, req *Request) (*Result, error)
}

// Model is an entry of GET /v1/models.
type Model struct {
	// ID is the model's CID; Name a human name ("stories260K") that requests
	// may use instead.
	ID, Name      string
	ContextLength int
	OwnedBy       string
}

// Request is one generation as a Generator sees it: OpenAI's parameters,
// already validated.
type Request struct {
	Model string
	// Prompt is the text to continue (/v1/completions); Messages the
	// conversation (/v1/chat/completions), rendered with the model's chat
	// template.
	Prompt   string
	Messages []chat.Message
	// MaxTokens 0 means as many as the context allows.
	MaxTokens   int
	Temperature float64
	TopP        float64
	TopK        int
	Seed        *int64
	Stop        []string
	User        string
	// OnText receives the text as it is produced. Stop sequences are already
	// removed.
	OnText func(string) error
	// Restart, when not nil, discards the text OnText received so far (a
	// non-streaming response, not yet sent), so a generator may start over
	// elsewhere after a partial failure. Nil for streams.
	Restart func()
	// OnFallback, when not nil, is called before a fallback endpoint takes
	// the request, ahead of any text, so a stream can say so in its headers.
	OnFallback func()
}

// Hop is one stage of the chain that served a request.
type Hop struct {
	Peer   string `json:"peer"`
	Layers string `json:"layers"`
}

// Result is what a generation did.
type Result struct {
	Model                          string // the ID to report
	PromptTokens, CompletionTokens int
	Finish                         string // "stop" or "length"
	// CostMilliGFT is what the client's ledger paid, in milli-GFT.
	CostMilliGFT int64
	Route        []Hop
	// Fallback says the request was answered by the fallback endpoint.
	Fallback bool
}

// Errors a Generator returns, which the API maps to statuses. Wrap them.
var (
	// ErrUnknownModel: no model of that name or CID (404).
	ErrUnknownModel = errors.New("unknown model")
	// ErrBadRequest: the request cannot be served as asked (400), e.g. a
	// prompt longer than the context or a conversation the template refuses.
	ErrBadRequest = errors.New("bad request")
)

// errStop ends generation at a stop sequence.
var errStop = errors.New("stop sequence")

// stopFilter withholds text that may be the start of a stop sequence, and
// ends generation (errStop) at the first complete one, so the client never
// sees any part of it.
type stopFilter struct {
	stops   []string
	pending string
	out     func(string) error
}

func (f *stopFilter) write(s string) error {
	f.pending += s
	cut, found := -1, false
	for _, st := range f.stops {
		if i := strings.Index(f.pending, st); i >= 0 && (!found || i < cut) {
			cut, found = i, true
		}
	}
	if found {
		err := f.emit(f.pending[:cut])
		f.pending = ""
		if err != nil {
			return err
		}
		return errStop
	}
	keep := 0
	for _, st := range f.stops {
		for n := min(len(st)-1, len(f.pending)); n > keep; n-- {
			if strings.HasSuffix(f.pending, st[:n]) {
				keep = n
				break
			}
		}
	}
	head := f.pending[:len(f.pending)-keep]
	f.pending = f.pending[len(f.pending)-keep:]
	return f.emit(head)
}

// end finishes a generation fed through the filter: a stop sequence is a
// "stop" finish, not an error; otherwise the held-back text is released.
func (f *stopFilter) end(finish pipeline.Finish, err error) (string, error) {
	switch {
	case errors.Is(err, errStop):
		return string(pipeline.FinishEOS), nil
	case err != nil:
		return "", err
	}
	return string(finish), f.flush()
}

func (f *stopFilter) flush() error {
	s := f.pending
	f.pending = ""
	return f.emit(s)
}

func (f *stopFilter) emit(s string) error {
	if s == "" || f.out == nil {
		return nil
	}
	return f.out(s)
}

// textModel is what Local and Mesh share: a model's tokenizer and chat
// template, and the loop that renders, generates and applies stop sequences.
type textModel struct {
	id, name string
	tok      *tokenizer.Tokenizer
	tmpl     *chat.Template
	ctxLen   int
}

// newTextModel parses the model's chat template, falling back to the default
// one (with a warning through warn) when it is absent or unsupported.
func newTextModel(id, name string, tok *tokenizer.Tokenizer, template string, ctxLen int, warn func(msg string, args ...any)) *textModel {
	t := chat.Default()
	if template != "" {
		if parsed, err := chat.Parse(template); err != nil {
			warn("chat template not usable, using the default", "model", id, "err", err)
		} else {
			t = parsed
		}
	}
	return &textModel{id: id, name: name, tok: tok, tmpl: t, ctxLen: ctxLen}
}

func (m *textModel) info(owner string) Model {
	return Model{ID: m.id, Name: m.name, ContextLength: m.ctxLen, OwnedBy: owner}
}

// prompt renders a request's text and reports whether it is a chat prompt.
func (m *textModel) prompt(req *Request) (string, bool, error) {
	if req.Messages == nil {
		return req.Prompt, false, nil
	}
	bos, eos := "", ""
	if id := m.tok.BOS(); id != tokenizer.NoToken {
		bos = m.tok.TokenText(id)
	}
	if id := m.tok.EOS(); id != tokenizer.NoToken {
		eos = m.tok.TokenText(id)
	}
	p, err := m.tmpl.Render(chat.Input{Messages: req.Messages, BOS: bos, EOS: eos, AddGenerationPrompt: true})
	if err != nil {
		return "", false, fmt.Errorf("%w: chat template: %v", ErrBadRequest, err)
	}
	return p, true, nil
}

// generate runs req on the runners open gives.
func (m *textModel) generate(ctx context.Context, open pipeline.Opener, req *Request) (*Result, error) {
	if req.Model == "" { // the default model: name it in the response
		req.Model = m.name
		if req.Model == "" {
			req.Model = m.id
		}
	}
	text, special, err := m.prompt(req)
	if err != nil {
		return nil, err
	}
	if text == "" {
		return nil, fmt.Errorf("%w: empty prompt", ErrBadRequest)
	}
	n := len(m.tok.EncodeWith(text, tokenizer.EncodeOptions{AddSpecial: true, ParseSpecial: special}))
	room := m.ctxLen - n
	if m.ctxLen > 0 && room < 1 {
		return nil, fmt.Errorf("%w: the prompt is %d tokens, the model's context %d", ErrBadRequest, n, m.ctxLen)
	}
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = room
	}
	if m.ctxLen > 0 && maxTokens > room {
		return nil, fmt.Errorf("%w: %d prompt tokens plus max_tokens %d exceed the model's context of %d", ErrBadRequest, n, maxTokens, m.ctxLen)
	}
	seed := rand.Uint64()
	if req.Seed != nil {
		seed = uint64(*req.Seed)
	}
	f := &stopFilter{stops: req.Stop, out: req.OnText}
	res, err := pipeline.Generate(ctx, open, m.tok, pipeline.Request{
		Prompt: text, MaxTokens: maxTokens, Special: special,
		Sampling: llama.SamplerConfig{Temperature: float32(req.Temperature), TopP: float32(req.TopP), TopK: req.TopK, Seed: seed},
		OnText:   f.write,
	})
	finish, err := f.end(res.Finish, err)
	if err != nil {
		return nil, err
	}
	return &Result{Model: req.Model, PromptTokens: res.PromptTokens, CompletionTokens: len(res.Tokens), Finish: finish}, nil
}
