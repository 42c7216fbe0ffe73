package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/verify"
)

// canaryPrompts are the prompts of a volunteer's canaries: ordinary openings,
// one drawn at random for each canary, so that a stage cannot tell a canary
// from a client's session by its first tokens alone.
func canaryPrompts() []string {
	return []string{
		"Once upon a time",
		"One day, a little girl",
		"The sun was shining and",
		"Tom and his dog went to",
		"In a small town there lived",
		"The best thing about the park was",
	}
}

// CanaryTokens is how long a canary's known continuation is: enough for a
// stage that skips work to diverge, short enough to cost little.
const CanaryTokens = 24

// WithCanaries makes a volunteer send canaries through the mesh: every
// interval on average (uniformly in [½, 1½]·every, so that their times tell
// nothing), a prompt whose greedy continuation the node computed itself on its
// own copy of the model, as an ordinary paid session through other nodes'
// chains. A chain that answers differently has every hop audited, and the hop
// to blame gets a failed CheckCanary verdict on this node's chain (see
// pipeline.RunCanary). It needs WithServe with a model file that holds every
// layer (the node computes the continuations once, on the whole model) and
// WithAudits (the Auditor judges the chains).
func WithCanaries(every time.Duration) Option {
	return func(c *nodeConfig) error {
		if every <= 0 {
			return fmt.Errorf("canary interval %v: want a positive duration", every)
		}
		c.canaryEvery = every
		return nil
	}
}

// canarist sends a volunteer's canaries in the background.
type canarist struct {
	n      *Node
	every  time.Duration
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	known map[string]verify.Canary // by prompt, computed on first use
	model *Model                   // the mesh's view of the node's model, opened on first use
}

func (n *Node) startCanaries(every time.Duration) (*canarist, error) {
	if n.srv == nil {
		return nil, errors.New("canaries need a served model (WithServe): the node computes their answers on its own weights")
	}
	if n.auditor == nil {
		return nil, errors.New("canaries need audits (WithAudits): the auditor judges the chains that answer wrong")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &canarist{n: n, every: every, cancel: cancel, done: make(chan struct{}), known: map[string]verify.Canary{}}
	go c.run(ctx)
	return c, nil
}

func (c *canarist) stop() {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.model != nil {
		c.model.Close()
	}
}

func (c *canarist) run(ctx context.Context) {
	defer close(c.done)
	for {
		wait := c.every/2 + rand.N(c.every+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		prompts := canaryPrompts()
		prompt := prompts[rand.N(len(prompts))]
		div, err := c.once(ctx, prompt)
		log := c.n.log.With("prompt", prompt)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Info("canary not sent", "err", err)
		case div >= 0:
			log.Warn("canary answered wrong: every hop of its chain is audited", "diverged_at_token", div)
		default:
			log.Debug("canary answered right")
		}
	}
}

// once sends one canary through a chain of other nodes (the node does not
// judge itself) and returns the index of the first wrong token, -1 if none.
func (c *canarist) once(ctx context.Context, prompt string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, max(c.every, time.Minute))
	defer cancel()
	canary, m, err := c.prepare(ctx, prompt)
	if err != nil {
		return 0, err
	}
	open := m.Opener(pipeline.WithPlanOptions(pipeline.WithoutPeers(string(c.n.ID()))))
	r, err := open(ctx, len(canary.Prompt)+len(canary.Want))
	if err != nil {
		return 0, fmt.Errorf("open a chain: %w", err)
	}
	remote, ok := r.(*pipeline.Remote)
	if !ok {
		return 0, fmt.Errorf("canary through a %T, not a mesh chain", r)
	}
	div, err := pipeline.RunCanary(ctx, remote, canary)
	if cerr := remote.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return div, err
}

// prepare computes the canary of prompt (once) and opens the mesh's view of
// the model (once).
func (c *canarist) prepare(ctx context.Context, prompt string) (verify.Canary, *Model, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	canary, ok := c.known[prompt]
	if !ok {
		var err error
		canary, err = pipeline.NewCanary(prompt, c.n.cfg.model, c.n.cfg.backend, prompt, CanaryTokens)
		if err != nil {
			return canary, nil, fmt.Errorf("compute the canary: %w", err)
		}
		c.known[prompt] = canary
	}
	if c.model == nil {
		m, err := c.n.OpenModel(ctx, c.n.modelID, DefaultCoverageWait)
		if err != nil {
			return canary, nil, err
		}
		c.model = m
	}
	return canary, c.model, nil
}
