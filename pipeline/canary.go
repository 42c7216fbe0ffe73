package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// Canaries: prompts whose greedy continuation the client knows, sent through
// a chain as an ordinary session. A chain that answers one differently
// computed something other than the model, but the divergence alone does not
// say which hop did: RunCanary marks the session, and the Auditor then audits
// every hop of it (not a sampled share). A hop whose audit passes is cleared;
// one whose audit fails, or that no independent auditor could re-execute, gets
// a CheckCanary failure at the position of the divergence besides its
// recompute result. A canary answered right gives every hop of the chain a
// CheckCanary pass.

// StoriesCanaryPrompt and StoriesCanaryTokens are the canary of the embedded
// stories260K model: the prompt of its reference text and the length of the
// continuation (../shared/models/README.md).
const (
	StoriesCanaryPrompt = "Once upon a time"
	StoriesCanaryTokens = 124
)

// NewCanary computes a canary on weights this node trusts (its own, or a
// model shipped with the code): the greedy continuation of prompt, at most n
// tokens, up to the end-of-generation token.
func NewCanary(name string, m *model.Model, be kernels.Backend, prompt string, n int) (verify.Canary, error) {
	c := verify.Canary{Name: name}
	if n < 1 {
		return c, fmt.Errorf("canary of %d tokens", n)
	}
	tok, err := TokenizerFor(m)
	if err != nil {
		return c, err
	}
	c.Prompt = tok.Encode(prompt, true)
	if len(c.Prompt) == 0 {
		return c, errors.New("canary prompt encodes to no tokens")
	}
	st, err := llama.NewStage(m, be)
	if err != nil {
		return c, err
	}
	local, err := NewLocal(st, len(c.Prompt)+n)
	if err != nil {
		return c, err
	}
	logits := make([]float32, m.Config.VocabSize)
	sampler := llama.NewSampler(len(logits), llama.SamplerConfig{})
	in := c.Prompt
	for len(c.Want) < n {
		if err := local.Forward(context.Background(), in, logits); err != nil {
			return c, err
		}
		next := sampler.Sample(logits)
		if tok.IsEOG(next) {
			break
		}
		c.Want = append(c.Want, next)
		in = []int32{next}
	}
	return c, nil
}

// StoriesCanary is the canary of the embedded stories260K model: its
// reference continuation of StoriesCanaryPrompt.
func StoriesCanary(be kernels.Backend) (verify.Canary, error) {
	m, err := model.FromGGUF(assets.DefaultModel)
	if err != nil {
		return verify.Canary{}, err
	}
	defer m.Close()
	return NewCanary("stories260K", m, be, StoriesCanaryPrompt, StoriesCanaryTokens)
}

// canaryOutcome is how a canary session went: the index of the first token
// that differed from the canary's (-1: none) and its position.
type canaryOutcome struct {
	name     string
	diverged int
	pos      int
}

// RunCanary sends canary c through r, a Remote opened for at least
// len(c.Prompt)+len(c.Want)-1 positions with WithAuditor, decoding greedily
// and stopping at the first token that differs. It returns the index of that
// token in c.Want, or -1 when the chain answered the canary exactly. Closing r
// then hands the session to the Auditor, which gives the verdicts (see the
// top of canary.go). A failover during the canary makes the verdicts
// meaningless, so RunCanary refuses to mark a session that failed over.
func RunCanary(ctx context.Context, r *Remote, c verify.Canary) (int, error) {
	if len(c.Prompt) == 0 || len(c.Want) == 0 {
		return 0, errors.New("empty canary")
	}
	if r.cfg.auditor == nil {
		return 0, errors.New("canary on a Remote without an Auditor: nobody would judge it")
	}
	if len(r.history) != 0 {
		return 0, errors.New("canary on a Remote that already ran a sequence")
	}
	r.SetTopK(1)
	logits := make([]float32, r.vocab)
	sampler := llama.NewSampler(r.vocab, llama.SamplerConfig{})
	in, pos := c.Prompt, len(c.Prompt)-1
	diverged := -1
	for i, want := range c.Want {
		if err := r.Forward(ctx, in, logits); err != nil {
			return 0, err
		}
		got := sampler.Sample(logits)
		if got != want {
			diverged = i
			break
		}
		in = []int32{got}
		pos++
	}
	if r.failover > 0 {
		return diverged, errors.New("the chain failed over during the canary: no verdict")
	}
	r.canary = &canaryOutcome{name: c.Name, diverged: diverged, pos: pos}
	return diverged, nil
}

// emitCanary gives hop h of a canary session the verdict v.
func (a *Auditor) emitCanary(s *auditedSession, h int, v verify.Verdict) {
	hop := s.route[h]
	key, err := PeerKey(peer.ID(hop.Peer))
	if err != nil {
		a.cfg.log.Info("canary verdict not given", "hop", h, "err", err)
		return
	}
	pos := s.canary.pos
	if v == verify.Pass {
		pos = len(s.tokens) - 1
	}
	a.emit(verify.Result{Subject: key, Session: s.id, Hop: uint16(h), Model: s.model.Bytes(),
		First: uint16(hop.First), Last: uint16(hop.Last), Position: uint32(max(pos, 0)),
		Check: verify.CheckCanary, Verdict: v})
}
