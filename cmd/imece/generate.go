package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/llama"
)

type generateFlags struct {
	model         string
	prompt        string
	maxTokens     int
	temperature   float32
	topK          int
	topP          float32
	repeatPenalty float32
	repeatLastN   int
	seed          int64
	threads       int
}

func (a *app) generateCmd() *cobra.Command {
	var f generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate text with a model in this process",
		Long: `Generate runs a whole model in this process and prints only the continuation of
the prompt on stdout, as it is produced. Without --model it uses the embedded
stories260K model. --temperature 0 is greedy decoding.`,
		Example: `  imece generate --prompt "Once upon a time" --max-tokens 100 --temperature 0
  imece generate --model tinyllama.gguf --prompt "The capital of France is"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.generate(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "GGUF file or HuggingFace directory (default: embedded stories260K)")
	fl.StringVar(&f.prompt, "prompt", "Once upon a time", "text to continue")
	fl.IntVar(&f.maxTokens, "max-tokens", 128, "maximum number of tokens to generate")
	fl.Float32Var(&f.temperature, "temperature", 0.8, "sampling temperature; 0 is greedy")
	fl.IntVar(&f.topK, "top-k", 40, "sample from the K most likely tokens; 0 for all")
	fl.Float32Var(&f.topP, "top-p", 0.95, "sample from the smallest set of tokens whose probability reaches P; 1 for all")
	fl.Float32Var(&f.repeatPenalty, "repeat-penalty", 1.0, "penalty for recently seen tokens; 1 for none")
	fl.IntVar(&f.repeatLastN, "repeat-last-n", 64, "how many recent tokens the repeat penalty considers")
	fl.Int64Var(&f.seed, "seed", -1, "random seed for sampling; -1 picks one")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads (default: all cores)")
	return cmd
}

func (f generateFlags) validate() error {
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
	case f.threads < 0:
		return fmt.Errorf("--threads must not be negative, got %d", f.threads)
	}
	return nil
}

func (f generateFlags) sampling() llama.SamplerConfig {
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

func (a *app) newBackend(threads int) (kernels.Backend, error) {
	var opts []kernels.Option
	if threads > 0 {
		opts = append(opts, kernels.WithThreads(threads))
	}
	be, err := kernels.NewCPU(opts...)
	if err != nil {
		return nil, fmt.Errorf("start CPU backend: %w", err)
	}
	a.log.Info("backend", "name", be.Name())
	return be, nil
}

func (a *app) generate(ctx context.Context, f generateFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	m, err := openModel(f.model, a.log)
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := pipeline.TokenizerFor(m)
	if err != nil {
		return err
	}
	be, err := a.newBackend(f.threads)
	if err != nil {
		return err
	}
	defer be.Close()
	st, err := llama.NewStage(m, be)
	if err != nil {
		return err
	}
	open := func(_ context.Context, maxLen int) (pipeline.Runner, error) { return pipeline.NewLocal(st, maxLen) }
	res, err := pipeline.Generate(ctx, open, tok, pipeline.Request{
		Prompt:    f.prompt,
		MaxTokens: f.maxTokens,
		Sampling:  f.sampling(),
		OnText:    func(s string) error { _, err := io.WriteString(a.stdout, s); return err },
	})
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

func perSecond(n int, d time.Duration) string {
	if n <= 0 || d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/d.Seconds())
}
