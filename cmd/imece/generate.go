package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/spf13/cobra"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/kernels/backends"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// samplingFlags are the flags of every command that generates text.
type samplingFlags struct {
	prompt        string
	maxTokens     int
	temperature   float32
	topK          int
	topP          float32
	repeatPenalty float32
	repeatLastN   int
	seed          int64
	pace          time.Duration
}

type generateFlags struct {
	samplingFlags
	model     string
	threads   int
	backend   string
	bootstrap []string
	modelCID  string
	data      string
	wait      time.Duration
	genesis   string
	auditRate float64
}

func (a *app) generateCmd() *cobra.Command {
	var f generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate text, in this process or through the mesh",
		Long: `Generate prints only the continuation of the prompt on stdout, as it is produced;
logs go to stderr. --temperature 0 is greedy decoding.

With --model (or nothing: the embedded stories260K) it runs the whole model in this
process. With --bootstrap and --model-cid it is a light client: it holds no weights,
finds the peers serving the model through the DHT, fetches the tokenizer from them
and generates through a chain of volunteers.`,
		Example: `  imece generate --prompt "Once upon a time" --max-tokens 100 --temperature 0
  imece generate --model tinyllama.gguf --prompt "The capital of France is"
  imece generate --bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW... \
      --model-cid bafkrei... --prompt "Once upon a time"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.generate(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "GGUF file or HuggingFace directory (default: embedded stories260K)")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads (default: all cores)")
	backendFlag(cmd, &f.backend)
	fl.Float64Var(&f.auditRate, "audit-rate", 0.1, "with --bootstrap, the share of hops audited by other replicas after the work (0 to 1); verdicts go into this client's ledger")
	fl.StringArrayVar(&f.bootstrap, "bootstrap", nil, "multiaddr of a node to join the mesh through (repeatable); makes this a light client")
	fl.StringVar(&f.modelCID, "model-cid", "", "CID of the model to use through the mesh (see imece model inspect)")
	fl.StringVar(&f.data, "data", "", "directory for the client's identity (default: the user config dir's imece/client)")
	fl.DurationVar(&f.wait, "wait", node.DefaultCoverageWait, "how long to wait for the mesh to cover the model")
	genesisFlag(cmd, &f.genesis)
	f.samplingFlags.register(cmd)
	return cmd
}

func (f *samplingFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.prompt, "prompt", "Once upon a time", "text to continue")
	fl.IntVar(&f.maxTokens, "max-tokens", 128, "maximum number of tokens to generate")
	fl.Float32Var(&f.temperature, "temperature", 0.8, "sampling temperature; 0 is greedy")
	fl.IntVar(&f.topK, "top-k", 40, "sample from the K most likely tokens; 0 for all")
	fl.Float32Var(&f.topP, "top-p", 0.95, "sample from the smallest set of tokens whose probability reaches P; 1 for all")
	fl.Float32Var(&f.repeatPenalty, "repeat-penalty", 1.0, "penalty for recently seen tokens; 1 for none")
	fl.IntVar(&f.repeatLastN, "repeat-last-n", 64, "how many recent tokens the repeat penalty considers")
	fl.Int64Var(&f.seed, "seed", -1, "random seed for sampling; -1 picks one")
	fl.DurationVar(&f.pace, "pace", 0, "wait this long after each token (failure drills and demos)")
	fl.MarkHidden("pace")
}

func (f samplingFlags) validate() error {
	switch {
	case f.maxTokens <= 0:
		return fmt.Errorf("--max-tokens must be positive, got %d", f.maxTokens)
	case f.temperature < 0:
		return fmt.Errorf("--temperature must not be negative, got %v", f.temperature)
	case f.topK < 0:
		return fmt.Errorf("--top-k must not be negative, got %d", f.topK)
	case f.topP < 0 || f.topP > 1:
		return fmt.Errorf("--top-p must be in [0, 1], got %v", f.topP)
	case f.repeatPenalty <= 0:
		return fmt.Errorf("--repeat-penalty must be positive, got %v", f.repeatPenalty)
	case f.repeatLastN < 0:
		return fmt.Errorf("--repeat-last-n must not be negative, got %d", f.repeatLastN)
	}
	return nil
}

func (f samplingFlags) sampling() llama.SamplerConfig {
	seed := uint64(f.seed)
	if f.seed < 0 {
		seed = rand.Uint64()
	}
	return llama.SamplerConfig{
		Temperature:   f.temperature,
		TopK:          f.topK,
		TopP:          f.topP,
		RepeatPenalty: f.repeatPenalty,
		RepeatLastN:   f.repeatLastN,
		Seed:          seed,
	}
}

// newBackend starts the backend --backend names (kernels/backends) with
// --threads CPU threads, and logs which one runs and why. Every command that
// computes goes through it.
func (a *app) newBackend(threads int, name string) (kernels.Backend, error) {
	be, choice, err := backends.Open(name, backends.WithThreads(threads), backends.WithLogger(a.log))
	if err != nil {
		return nil, fmt.Errorf("--backend: %w", err)
	}
	attrs := []any{"name", be.Name(), "why", choice.Reason}
	for _, t := range choice.Tried {
		if t.Name != be.Name() {
			attrs = append(attrs, "tried_"+t.Kind, t.String())
		}
	}
	a.log.Info("backend", attrs...)
	return be, nil
}

// loadModel opens a model file (the embedded model for "") and starts the
// backend to run it on; release closes both, backend first.
func (a *app) loadModel(path string, threads int, backend string) (m *model.Model, be kernels.Backend, release func(), err error) {
	if m, err = openModel(path, a.log); err != nil {
		return nil, nil, nil, err
	}
	if be, err = a.newBackend(threads, backend); err != nil {
		m.Close()
		return nil, nil, nil, err
	}
	return m, be, func() { be.Close(); m.Close() }, nil
}

// backendFlag registers --backend on a command that computes.
func backendFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "backend", "cpu", "compute backend: "+strings.Join(backends.Names(), "|")+
		"; opencl:N or opencl:NAME picks a device. auto times each backend that starts and takes the fastest, "+
		"saying why; a named one that cannot start is an error")
}

// request is the generation the flags ask for, streaming to stdout.
func (a *app) request(f samplingFlags) pipeline.Request {
	return pipeline.Request{
		Prompt:    f.prompt,
		MaxTokens: f.maxTokens,
		Sampling:  f.sampling(),
		OnText: func(s string) error {
			_, err := io.WriteString(a.stdout, s)
			if f.pace > 0 {
				time.Sleep(f.pace)
			}
			return err
		},
	}
}

// finish ends the output line and logs the generation's figures.
func (a *app) finish(res pipeline.Result, err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintln(a.stdout)
	a.log.Info("generated",
		"prompt_tokens", res.PromptTokens, "tokens", len(res.Tokens), "finish", res.Finish,
		"prefill", res.Prefill.Round(time.Microsecond),
		"decode_tokens_per_s", perSecond(len(res.Tokens)-1, res.Decode))
	return err
}

func (a *app) generate(ctx context.Context, f generateFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.threads < 0 {
		return fmt.Errorf("--threads must not be negative, got %d", f.threads)
	}
	if len(f.bootstrap) > 0 || f.modelCID != "" {
		return a.generateRemote(ctx, f)
	}
	m, be, release, err := a.loadModel(f.model, f.threads, f.backend)
	if err != nil {
		return err
	}
	defer release()
	tok, err := pipeline.TokenizerFor(m)
	if err != nil {
		return err
	}
	st, err := llama.NewStage(m, be)
	if err != nil {
		return err
	}
	open := func(_ context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(st, maxLen) }
	return a.finish(pipeline.Generate(ctx, open, tok, a.request(f.samplingFlags)))
}

// generateRemote is the light client: no weights, everything through the mesh.
func (a *app) generateRemote(ctx context.Context, f generateFlags) error {
	switch {
	case f.model != "":
		return errors.New("--model runs the model locally; a light client (--bootstrap) names it with --model-cid")
	case f.modelCID == "":
		return errors.New("--bootstrap needs --model-cid: the CID of the model to use (imece model inspect prints it)")
	case len(f.bootstrap) == 0:
		return errors.New("--model-cid needs --bootstrap: a node to join the mesh through")
	}
	id, err := cid.Decode(f.modelCID)
	if err != nil {
		return fmt.Errorf("--model-cid: %w", err)
	}
	dir := f.data
	if dir == "" {
		if dir, err = defaultDataDir("client"); err != nil {
			return err
		}
	}
	g, err := loadGenesis(f.genesis)
	if err != nil {
		return err
	}
	n, err := node.Start(ctx,
		node.WithDataDir(dir), node.WithBootstrap(f.bootstrap...), node.WithClientMode(),
		node.WithNodeLogger(a.log), node.WithListen("/ip4/0.0.0.0/tcp/0"), node.WithGenesis(g), node.WithAudits(f.auditRate))
	if err != nil {
		return err
	}
	defer n.Close()
	mdl, err := n.OpenModel(ctx, id, f.wait)
	if err != nil {
		return err
	}
	defer mdl.Close()
	if err := a.finish(mdl.Generate(ctx, a.request(f.samplingFlags))); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.WaitAudits(wctx); err != nil {
		a.log.Warn("audits not finished before leaving", "err", err)
	}
	return nil
}

// defaultDataDir is where a node keeps its identity when --data is not given.
func defaultDataDir(role string) (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no --data and no user config directory: %w", err)
	}
	return filepath.Join(base, "imece", role), nil
}

func perSecond(n int, d time.Duration) string {
	if n <= 0 || d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/d.Seconds())
}
