package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/tokenizer"
)

// Runner computes next-token logits for a growing sequence.
type Runner interface {
	// Forward appends tokens at the sequence's next positions and writes the logits
	// that follow the last of them into logits (one per vocabulary entry).
	Forward(ctx context.Context, tokens []int32, logits []float32) error
}

// Local runs a whole model in this process: the single-node case of a chain.
type Local struct {
	se *llama.Session
	x  []float32
}

// NewLocal starts a session of at most maxLen positions on a stage that holds every
// layer of its model.
func NewLocal(st *llama.Stage, maxLen int) (*Local, error) {
	if !st.IsFirst() || !st.IsLast() {
		return nil, fmt.Errorf("local generation needs the whole model, stage holds layers [%d, %d)", st.First(), st.Last())
	}
	se, err := st.NewSession(maxLen)
	if err != nil {
		return nil, err
	}
	return &Local{se: se}, nil
}

// Forward implements Runner.
func (l *Local) Forward(ctx context.Context, tokens []int32, logits []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.se.Stage().Config().Dim
	if cap(l.x) < len(tokens)*d {
		l.x = make([]float32, len(tokens)*d)
	}
	x := l.x[:len(tokens)*d]
	if err := l.se.Embed(x, tokens); err != nil {
		return err
	}
	if err := l.se.Forward(x); err != nil {
		return err
	}
	return l.se.Logits(logits, x)
}

// Request is one text generation.
type Request struct {
	Prompt string
	// MaxTokens bounds the number of generated tokens.
	MaxTokens int
	// Special parses control tokens written in the prompt ("<|im_start|>",
	// "<s>") as those tokens, which a prompt rendered from a chat template
	// needs; a BOS the template wrote is then not doubled by the one the
	// tokenizer adds. Off, such text stays plain text, as user input should.
	Special  bool
	Sampling llama.SamplerConfig
	// OnText receives the continuation as it is produced, in pieces that are
	// always whole UTF-8 characters. An error from it stops generation.
	OnText func(string) error
}

// Finish says why generation stopped.
type Finish string

// The reasons generation stops.
const (
	FinishEOS    Finish = "stop"   // the model produced an end-of-generation token
	FinishLength Finish = "length" // MaxTokens reached
)

// Result describes a finished generation.
type Result struct {
	PromptTokens int
	Tokens       []int32 // generated tokens, end-of-generation token excluded
	Finish       Finish
	// Prefill is the time to process the prompt and produce the first token;
	// Decode the time for the rest.
	Prefill, Decode time.Duration
	// Recoveries lists, for a generation through the mesh, how long each
	// failover took, from the failure to the next token.
	Recoveries []time.Duration
}

// Opener starts a sequence with room for maxLen positions: a local session, or
// sessions on every stage of a chain.
type Opener func(ctx context.Context, maxLen int) (Runner, error)

// candidatesNeeded is how many of the largest logits the sampler can need: the
// one greedy decoding takes, or the K top-k sampling keeps, plus one for each
// token the repetition penalty may push down (a penalised token only loses rank,
// so the K best after the penalty are among the K+N best before it). 0 means all:
// sampling without top-k needs the whole distribution.
func candidatesNeeded(s llama.SamplerConfig) int {
	k := s.TopK
	if s.Temperature <= 0 {
		k = 1
	}
	if k <= 0 {
		return 0
	}
	if s.RepeatPenalty != 0 && s.RepeatPenalty != 1 {
		k += s.RepeatLastN
	}
	return k
}

// Generate tokenizes the prompt, opens a sequence just long enough for it and
// req.MaxTokens more, and samples tokens, streaming their text to req.OnText. The
// tokenizer must be the model's.
func Generate(ctx context.Context, open Opener, tok *tokenizer.Tokenizer, req Request) (res Result, err error) {
	if req.MaxTokens <= 0 {
		return res, errors.New("max tokens must be positive")
	}
	prompt := tok.EncodeWith(req.Prompt, tokenizer.EncodeOptions{AddSpecial: true, ParseSpecial: req.Special})
	if bos := tok.BOS(); req.Special && len(prompt) > 1 && prompt[0] == bos && prompt[1] == bos {
		prompt = prompt[1:]
	}
	if len(prompt) == 0 {
		return res, errors.New("empty prompt: the tokenizer adds no BOS token, so give some text")
	}
	res.PromptTokens = len(prompt)
	// The last sampled token is never fed back, hence the -1.
	r, err := open(ctx, len(prompt)+req.MaxTokens-1)
	if err != nil {
		return res, err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	if t, ok := r.(interface{ SetTopK(int) }); ok {
		t.SetTopK(candidatesNeeded(req.Sampling))
	}
	if rec, ok := r.(interface{ Recoveries() []time.Duration }); ok {
		defer func() { res.Recoveries = rec.Recoveries() }()
	}
	vocab := tok.VocabSize()
	logits := make([]float32, vocab)
	sampler := llama.NewSampler(vocab, req.Sampling)
	for _, t := range prompt {
		sampler.Accept(t)
	}
	dec := tok.NewDecoder(tokenizer.DecodeOptions{KeepLeadingSpace: true})
	emit := func(s string) error {
		if s == "" || req.OnText == nil {
			return nil
		}
		return req.OnText(s)
	}
	start := time.Now()
	in, one := prompt, make([]int32, 1)
	res.Finish = FinishLength
	for len(res.Tokens) < req.MaxTokens {
		if err := r.Forward(ctx, in, logits); err != nil {
			return res, fmt.Errorf("forward at position %d: %w", res.PromptTokens+len(res.Tokens), err)
		}
		next := sampler.Sample(logits)
		if len(res.Tokens) == 0 {
			res.Prefill = time.Since(start)
			start = time.Now()
		}
		if tok.IsEOG(next) {
			res.Finish = FinishEOS
			break
		}
		sampler.Accept(next)
		res.Tokens = append(res.Tokens, next)
		if err := emit(dec.Next(next)); err != nil {
			return res, err
		}
		in = append(one[:0], next)
	}
	res.Decode = time.Since(start)
	return res, emit(dec.Flush())
}
