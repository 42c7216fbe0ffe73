package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
)

func (a *app) modelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect and synthesize model files",
	}
	cmd.AddCommand(a.modelInspectCmd(), a.modelSynthCmd())
	return cmd
}

func (a *app) modelInspectCmd() *cobra.Command {
	var layerCIDs bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a model's architecture, tensors, size and CID",
		Long: `Inspect prints what a model file holds: architecture and hyperparameters, every
tensor with its shape and type, the total size, and the model's CID (the hash of its
canonical manifest, DESIGN.md §2) — the name the network knows it by.`,
		Example: `  imece model inspect tinyllama.gguf
  imece model inspect --layer-cids ./Mistral-7B-v0.1/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openModel(args[0], a.log)
			if err != nil {
				return err
			}
			defer m.Close()
			return inspect(a.stdout, m, layerCIDs)
		},
	}
	cmd.Flags().BoolVar(&layerCIDs, "layer-cids", false, "also print the CID of every layer block")
	return cmd
}

func inspect(w io.Writer, m *model.Model, layerCIDs bool) error {
	id, err := m.CID()
	if err != nil {
		return fmt.Errorf("compute CID: %w", err)
	}
	c := m.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("file", "%s", m.Path)
	row("format", "%s", m.Format)
	if name, ok := m.Meta.String("general.name"); ok {
		row("name", "%s", name)
	}
	row("cid", "%s", id)
	row("architecture", "%s", c.Arch)
	row("parameters", "%s", groupDigits(m.Params()))
	row("size", "%s (%s bytes of tensor data)", humanBytes(m.Size()), groupDigits(m.Size()))
	row("layers", "%d", c.Layers)
	row("embedding", "%d", c.Dim)
	row("heads", "%d query, %d key/value, %d dimensions each", c.Heads, c.KVHeads, c.HeadDim)
	row("feed-forward", "%d", c.FFN)
	if c.Experts > 0 {
		row("experts", "%d, %d per token", c.Experts, c.ExpertsUsed)
	}
	row("vocabulary", "%d", c.VocabSize)
	row("context", "%d", c.ContextLength)
	layout := "interleaved pairs (GGUF llama)"
	if c.RopeNeox {
		layout = "split halves (NEOX)"
	}
	scaling := "none"
	if c.RopeScaling.Type != "" {
		scaling = fmt.Sprintf("%s ×%g", c.RopeScaling.Type, c.RopeScaling.Factor)
	}
	row("rope", "base %g, %d dimensions, %s, scaling %s", c.RopeBase, c.RopeDim, layout, scaling)
	row("norm epsilon", "%g", c.NormEps)
	if tok, err := pipeline.TokenizerFor(m); err == nil {
		row("tokenizer", "%s, %d tokens", tok.Kind(), tok.VocabSize())
	} else {
		row("tokenizer", "none (%v)", err)
	}
	counts := map[kernels.DType]int{}
	var order []kernels.DType
	for _, t := range m.Tensors {
		if counts[t.DType] == 0 {
			order = append(order, t.DType)
		}
		counts[t.DType]++
	}
	var types []string
	for _, dt := range order {
		types = append(types, fmt.Sprintf("%s ×%d", dt, counts[dt]))
	}
	row("types", "%s", strings.Join(types, ", "))
	if err := tw.Flush(); err != nil {
		return err
	}
	if layerCIDs {
		fmt.Fprintln(w)
		for i := 0; i < c.Layers; i++ {
			lc, err := m.LayerCID(i)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "layer %-4d %s\n", i, lc)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tshape\ttype\tbytes")
	for _, t := range m.Tensors {
		dims := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, strings.Join(dims, "×"), t.DType, groupDigits(int64(len(t.Data))))
	}
	return tw.Flush()
}

type synthFlags struct {
	opts      model.SynthOptions
	dtype     string
	vocabFrom string
	out       string
	seed      uint64
}

func (a *app) modelSynthCmd() *cobra.Command {
	var f synthFlags
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Write a GGUF model of random weights of a given shape",
		Long: `Synth writes a LLaMA-architecture GGUF file with random weights, so benchmarks and
tests can run at real model sizes without downloading one. The same flags and seed
give the same file. --vocab-from copies the tokenizer of another GGUF file so the
model can tokenize text.`,
		Example: `  # TinyLlama-1.1B's shape in Q8_0 (about 1.2 GB)
  imece model synth --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
      --vocab 32000 --dtype q8_0 --out tinyllama-shape.gguf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.synth(f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.opts.Dim, "dim", 0, "embedding width")
	fl.IntVar(&f.opts.Layers, "layers", 0, "number of transformer blocks")
	fl.IntVar(&f.opts.Heads, "heads", 0, "attention heads")
	fl.IntVar(&f.opts.KVHeads, "kv-heads", 0, "key/value heads (default: --heads)")
	fl.IntVar(&f.opts.FFN, "ffn", 0, "feed-forward width")
	fl.IntVar(&f.opts.Vocab, "vocab", 0, "vocabulary size (default with --vocab-from: its size)")
	fl.IntVar(&f.opts.Experts, "experts", 0, "mixture of experts: number of experts (0 for a dense model)")
	fl.IntVar(&f.opts.ExpertsUsed, "experts-used", 2, "mixture of experts: experts per token")
	fl.StringVar(&f.dtype, "dtype", "f32", "weight type: f32, f16, q8_0 or q4_0")
	fl.StringVar(&f.vocabFrom, "vocab-from", "", "GGUF file whose tokenizer to copy")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed")
	fl.StringVar(&f.out, "out", "", "output file")
	for _, name := range []string{"dim", "layers", "heads", "ffn", "out"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (a *app) synth(f synthFlags) error {
	dt, err := kernels.ParseDType(f.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	o := f.opts
	o.DType, o.Seed = dt, f.seed
	if o.Experts == 0 {
		o.ExpertsUsed = 0
	}
	if f.vocabFrom != "" {
		src, err := model.ReadGGUFMetadata(f.vocabFrom)
		if err != nil {
			return fmt.Errorf("--vocab-from: %w", err)
		}
		o.VocabFrom = src
	} else if o.Vocab == 0 {
		return errors.New("--vocab is required without --vocab-from")
	}
	if term.IsTerminal(int(os.Stderr.Fd())) && a.stderr == os.Stderr {
		var bar *progressbar.ProgressBar
		o.Progress = func(written, total int64) {
			if bar == nil {
				bar = progressbar.DefaultBytes(total, "synthesizing")
			}
			bar.Set64(written)
		}
	}
	if err := model.SynthesizeFile(f.out, o); err != nil {
		return err
	}
	m, err := model.Open(f.out)
	if err != nil {
		return fmt.Errorf("re-open %s: %w", f.out, err)
	}
	defer m.Close()
	if a.stderr == os.Stderr {
		showHashing(m)
	}
	id, err := m.CID()
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote %s: %s parameters, %s, cid %s\n", f.out, groupDigits(m.Params()), humanBytes(m.Size()), id)
	return nil
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
