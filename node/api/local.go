package api

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// Local serves a whole model in this process: no mesh, no ledger, cost 0
// (imece serve). Each request has its own session (KV cache) on one shared
// stage, so requests run concurrently.
type Local struct {
	st *llama.Stage
	m  *textModel
}

// LocalOption configures NewLocal.
type LocalOption func(*localConfig)

type localConfig struct {
	name string
	log  *slog.Logger
}

// LocalName is the model's human name, accepted in requests besides its CID.
func LocalName(name string) LocalOption { return func(c *localConfig) { c.name = name } }

// LocalLogger receives warnings (an unusable chat template).
func LocalLogger(l *slog.Logger) LocalOption { return func(c *localConfig) { c.log = l } }

// NewLocal prepares m on be. The model and backend must outlive the Local.
func NewLocal(m *model.Model, be kernels.Backend, opts ...LocalOption) (*Local, error) {
	cfg := localConfig{log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	tok, err := pipeline.TokenizerFor(m)
	if err != nil {
		return nil, err
	}
	id, err := m.CID()
	if err != nil {
		return nil, fmt.Errorf("model CID: %w", err)
	}
	st, err := llama.NewStage(m, be)
	if err != nil {
		return nil, err
	}
	return &Local{st: st, m: newTextModel(id.String(), cfg.name, tok, pipeline.ChatTemplateFor(m), m.Config.ContextLength, cfg.log.Warn)}, nil
}

// Models implements Generator.
func (l *Local) Models(context.Context) []Model { return []Model{l.m.info("local")} }

// Generate implements Generator.
func (l *Local) Generate(ctx context.Context, req *Request) (*Result, error) {
	if req.Model != "" && req.Model != l.m.id && req.Model != l.m.name {
		return nil, fmt.Errorf("%w: %q (this server has %s)", ErrUnknownModel, req.Model, l.m.display())
	}
	open := func(_ context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(l.st, maxLen) }
	return l.m.generate(ctx, open, req)
}

func (m *textModel) display() string {
	if m.name != "" {
		return m.name + " (" + m.id + ")"
	}
	return m.id
}
