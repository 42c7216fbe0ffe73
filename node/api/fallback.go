package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/imece/imece/pipeline"
)

// fallbackGenerator answers with the fallback endpoint what the primary
// generator cannot: no chain covers the model (within the mesh's short wait),
// the chain failed beyond its retries, or the model is unknown to the mesh.
// Requests the mesh refused for the caller's own reasons (a bad request,
// insufficient credits) and cancelled requests are not sent upstream.
type fallbackGenerator struct {
	primary Generator
	fb      *pipeline.Fallback
	log     *slog.Logger
}

// WithFallback puts fb behind primary. A log of nil discards the warnings.
func WithFallback(primary Generator, fb *pipeline.Fallback, log *slog.Logger) Generator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &fallbackGenerator{primary: primary, fb: fb, log: log}
}

// Models implements Generator: the primary's, and the upstream model when one
// is configured.
func (g *fallbackGenerator) Models(ctx context.Context) []Model {
	ms := g.primary.Models(ctx)
	if name := g.fb.Model(); name != "" {
		ms = append(ms, Model{ID: name, Name: name, OwnedBy: "fallback"})
	}
	return ms
}

// Generate implements Generator.
func (g *fallbackGenerator) Generate(ctx context.Context, req *Request) (*Result, error) {
	emitted := false
	onText := req.OnText
	req.OnText = func(s string) error {
		emitted = true
		if onText == nil {
			return nil
		}
		return onText(s)
	}
	res, err := g.primary.Generate(ctx, req)
	req.OnText = onText
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrBadRequest) || errors.Is(err, pipeline.ErrPaymentRequired) {
		return res, err
	}
	if emitted {
		if req.Restart == nil {
			return nil, err // part of the answer is already streamed
		}
		req.Restart()
	}
	g.log.Warn("mesh cannot serve the request, using the fallback", "model", req.Model, "fallback", g.fb.URL(), "err", err)
	return g.upstream(ctx, req)
}

func (g *fallbackGenerator) upstream(ctx context.Context, req *Request) (*Result, error) {
	if req.OnFallback != nil {
		req.OnFallback()
	}
	f := &stopFilter{stops: req.Stop, out: req.OnText}
	temp, topP := req.Temperature, req.TopP
	fr := pipeline.FallbackRequest{
		Model: req.Model, Prompt: req.Prompt, MaxTokens: req.MaxTokens,
		Temperature: &temp, TopP: &topP, Seed: req.Seed, Stop: req.Stop, User: req.User,
		OnText: f.write,
	}
	if req.Messages != nil {
		fr.Messages = make([]pipeline.FallbackMessage, len(req.Messages))
		for i, m := range req.Messages {
			fr.Messages[i] = pipeline.FallbackMessage{Role: m.Role, Content: m.Content}
		}
	}
	up, err := g.fb.Generate(ctx, fr)
	finish, err := f.end(up.Finish, err)
	if err != nil {
		return nil, err
	}
	model := req.Model
	if model == "" {
		model = up.Model
	}
	return &Result{Model: model, PromptTokens: up.PromptTokens, CompletionTokens: up.CompletionTokens, Finish: finish, Fallback: true}, nil
}
