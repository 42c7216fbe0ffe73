package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imece/imece/node/hardware"
)

type benchFlags struct {
	data    string
	threads int
	backend string
	quick   bool
	genesis string
}

func (a *app) benchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark this machine and show its hardware tier and multiplier",
		Long: `Bench measures, on the backend a node serves with, the throughput of an f16
4096×4096 matrix product by 128 rows, memory bandwidth (a STREAM triad) and the
time to decode one token through one Llama-7B layer in q8_0 with 512 positions
cached. It combines them into the performance index (0.5 matmul + 0.3 bandwidth
+ 0.2 latency, each relative to the baseline class, an RTX 3060), places it
among the eight hardware tiers and interpolates the multiplier, and prints the
breakdown, the tier, the multiplier and the device fingerprint. It takes about
ten seconds and a gigabyte of memory.

With --data it stores the claim in DIR/hardware.json, where imece node finds it
and reuses it until the hardware (the fingerprint) changes.`,
		Example: `  imece bench
  imece bench --data ~/.config/imece/node --threads 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.bench(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "", "node data directory to store the claim in (default: store nothing)")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads (default: all cores)")
	backendFlag(cmd, &f.backend)
	fl.BoolVar(&f.quick, "quick", false, "a sub-second run with small shapes, for tests: not a claim")
	genesisFlag(cmd, &f.genesis)
	return cmd
}

func (a *app) bench(ctx context.Context, f benchFlags) error {
	if f.threads < 0 {
		return errors.New("--threads must not be negative")
	}
	g, err := loadGenesis(f.genesis)
	if err != nil {
		return err
	}
	scale, err := hardware.NewScale(hardware.DefaultAnchors(), g.Tiers)
	if err != nil {
		return err
	}
	be, err := a.newBackend(f.threads, f.backend)
	if err != nil {
		return err
	}
	defer be.Close()
	threads := f.threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	if load, ok := loadAverage("/proc/loadavg"); ok && load >= 0.5*float64(runtime.NumCPU()) {
		a.log.Warn("the machine is busy: other processes lower the figures, run again when it is idle",
			"load_average", load, "cpus", runtime.NumCPU())
	}
	show := a.newBenchProgress()
	m, err := hardware.Measure(ctx, be, hardware.WithQuick(f.quick), hardware.WithThreads(threads), hardware.WithProgress(show.update))
	show.finish()
	if err != nil {
		return err
	}
	dev := hardware.Describe(be.Name())
	c := scale.Claim(m, dev, time.Now())
	a.log.Info("benchmark", "backend", c.Backend, "took", m.Took.Round(time.Millisecond), "index", c.Index, "tier", c.TierName, "multiplier_milli", c.Multiplier)
	if err := a.printBench(scale, dev, c, m); err != nil {
		return err
	}
	if f.data == "" {
		return nil
	}
	var prev *hardware.Claim
	switch p, err := hardware.Load(f.data); {
	case err == nil:
		prev = &p
	case errors.Is(err, hardware.ErrNoClaim):
	default:
		a.log.Warn("previous hardware claim unreadable", "err", err)
	}
	ch := hardware.Compare(prev, c)
	if err := hardware.Save(f.data, c); err != nil {
		return err
	}
	a.log.Info("hardware claim stored", "dir", f.data, "change", ch)
	fmt.Fprintf(a.stdout, "\nstored in %s", f.data)
	switch {
	case ch.First:
		fmt.Fprintln(a.stdout, " (the first claim there)")
	case ch.FingerprintChanged:
		fmt.Fprintf(a.stdout, " (replaces a claim of other hardware, at %s)\n", milli(ch.MultiplierBefore))
	case ch.TierJump != 0:
		fmt.Fprintf(a.stdout, " (tier %+d from the previous claim, at %s)\n", ch.TierJump, milli(ch.MultiplierBefore))
	default:
		fmt.Fprintf(a.stdout, " (same hardware and tier as the previous claim, at %s)\n", milli(ch.MultiplierBefore))
	}
	return nil
}

// printBench prints the breakdown of claim c, measured as m on dev.
func (a *app) printBench(scale *hardware.Scale, dev hardware.Device, c hardware.Claim, m hardware.Measurement) error {
	r := scale.Rate(c.Figures())
	base := scale.Baseline()
	tiers := scale.Tiers()
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "device\t%s\n", dev)
	fmt.Fprintf(w, "fingerprint\t%s\n", hex.EncodeToString(c.Fingerprint[:]))
	fmt.Fprintf(w, "backend\t%s (benchmark took %s)\n", c.Backend, m.Took.Round(100*time.Millisecond))
	if c.Quick {
		fmt.Fprintf(w, "quick run\tsmall shapes, latency extrapolated: a test, not a claim\n")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "figure\tmeasured\tbaseline\tratio\tweight\tcontribution\n")
	fmt.Fprintf(w, "matmul (f16, prefill)\t%s\t%s\t%.4f\t%.1f\t%.4f\n",
		flops(c.Figures().MatmulGFLOPS), flops(base.MatmulGFLOPS), r.Matmul.Ratio, r.Matmul.Weight, r.Matmul.Contribution)
	fmt.Fprintf(w, "memory bandwidth (triad)\t%s\t%s\t%.4f\t%.1f\t%.4f\n",
		bytesPerSec(c.Figures().BandwidthGBps), bytesPerSec(base.BandwidthGBps), r.Bandwidth.Ratio, r.Bandwidth.Weight, r.Bandwidth.Contribution)
	fmt.Fprintf(w, "layer latency (7B q8_0, decode)\t%s\t%s\t%.4f\t%.1f\t%.4f\n",
		c.Figures().LayerLatency, base.LayerLatency.Round(time.Microsecond), r.Latency.Ratio, r.Latency.Weight, r.Latency.Contribution)
	fmt.Fprintf(w, "performance index\t\t\t\t\t%.4f\n", r.Index)
	fmt.Fprintln(w)
	where := ""
	switch {
	case r.Index < tiers[0].Index:
		where = fmt.Sprintf(": below its anchor (%s, index %.4f)", tiers[0].Hardware, tiers[0].Index)
	case r.Tier == len(tiers)-1:
		where = fmt.Sprintf(": at or above its anchor (%s, index %.4f), the cap", tiers[r.Tier].Hardware, tiers[r.Tier].Index)
	default:
		lo, hi := tiers[r.Tier], tiers[r.Tier+1]
		where = fmt.Sprintf(": between %s (index %.4f, %s) and %s (index %.4f, %s)", lo.Name, lo.Index, milli(lo.Multiplier), hi.Name, hi.Index, milli(hi.Multiplier))
	}
	fmt.Fprintf(w, "tier\t%s (%d of %d)%s\n", r.TierName, r.Tier+1, len(tiers), where)
	fmt.Fprintf(w, "multiplier\t%s\n", milli(r.Multiplier))
	for _, t := range tiers {
		if t.Baseline {
			fmt.Fprintf(w, "baseline\t%s: the figures it is expected to measure (published peaks × efficiencies)\n", t.Hardware)
		}
	}
	return w.Flush()
}

// loadAverage reads the one-minute load average from a Linux loadavg file.
func loadAverage(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	return v, err == nil
}

func milli(m uint32) string { return fmt.Sprintf("%d.%03d", m/1000, m%1000) }

func flops(gflops float64) string {
	if gflops >= 1000 {
		return fmt.Sprintf("%.2f TFLOP/s", gflops/1000)
	}
	return fmt.Sprintf("%.1f GFLOP/s", gflops)
}

func bytesPerSec(gbps float64) string {
	if gbps >= 1000 {
		return fmt.Sprintf("%.2f TB/s", gbps/1000)
	}
	return fmt.Sprintf("%.1f GB/s", gbps)
}

// benchProgress shows a benchmark's progress on stderr: a bar on a terminal, a
// line per step otherwise (logs, tests).
type benchProgress struct {
	bar  *progressbar.ProgressBar
	w    io.Writer
	step string
}

func (a *app) newBenchProgress() *benchProgress {
	p := &benchProgress{w: a.stderr}
	if term.IsTerminal(int(os.Stderr.Fd())) && a.stderr == os.Stderr {
		p.bar = progressbar.NewOptions(1000,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("benchmark"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *benchProgress) update(pr hardware.Progress) {
	changed := pr.Step != p.step
	p.step = pr.Step
	if p.bar != nil {
		if changed {
			p.bar.Describe(fmt.Sprintf("%d/%d %-10s", pr.Index, pr.Steps, pr.Step))
		}
		p.bar.Set(int(pr.Done * 1000))
		return
	}
	if changed {
		fmt.Fprintf(p.w, "bench: %d/%d %s\n", pr.Index, pr.Steps, pr.Step)
	}
}

func (p *benchProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
