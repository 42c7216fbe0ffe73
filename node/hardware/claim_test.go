package hardware_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/node/hardware"
)

// newCPU starts a CPU backend of threads threads for one test.
func newCPU(t *testing.T, threads int) kernels.Backend {
	t.Helper()
	be, err := kernels.NewCPU(kernels.WithThreads(threads))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

// exampleClaim is the claim of a hand-picked measurement on a described device.
func exampleClaim(backend string) hardware.Claim {
	m := hardware.Measurement{
		Figures: hardware.Figures{MatmulGFLOPS: 193.4, BandwidthGBps: 30.51, LayerLatency: 7440400 * time.Nanosecond},
		Backend: backend,
	}
	d := hardware.Device{CPU: "Example CPU", CPUs: 2, MemoryGiB: 24, Backend: backend}
	return hardware.DefaultScale().Claim(m, d, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
}

func TestClaimFromMeasurement(t *testing.T) {
	c := exampleClaim("cpu/avx512-vnni×2")
	if c.MatmulMFLOPS != 193_400 || c.BandwidthMBps != 30_510 || c.LayerMicros != 7440 {
		t.Errorf("figures %d MFLOP/s, %d MB/s, %d µs; want 193400, 30510, 7440", c.MatmulMFLOPS, c.BandwidthMBps, c.LayerMicros)
	}
	if c.Tier != 0 || c.TierName != "Mobile / Edge" || c.Multiplier != 81 {
		t.Errorf("rated tier %d (%s) at %d milli, want 0 (Mobile / Edge) at 81", c.Tier, c.TierName, c.Multiplier)
	}
	if err := hardware.DefaultScale().Check(c); err != nil {
		t.Errorf("a claim as made fails its check: %v", err)
	}
	forged := c
	forged.Multiplier = 1000
	if err := hardware.DefaultScale().Check(forged); !errors.Is(err, hardware.ErrInconsistent) {
		t.Errorf("a claim with an inflated multiplier: %v, want ErrInconsistent", err)
	}
	forged = c
	forged.Tier = 3
	if err := hardware.DefaultScale().Check(forged); !errors.Is(err, hardware.ErrInconsistent) {
		t.Errorf("a claim with an inflated tier: %v, want ErrInconsistent", err)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := hardware.Load(dir); !errors.Is(err, hardware.ErrNoClaim) {
		t.Fatalf("load from an empty directory: %v, want ErrNoClaim", err)
	}
	c := exampleClaim("cpu/avx512-vnni×2")
	if err := hardware.Save(dir, c); err != nil {
		t.Fatal(err)
	}
	got, err := hardware.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("loaded %+v\nsaved  %+v", got, c)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data directory holds %d files, want only %s", len(entries), hardware.ClaimFile)
	}

	path := filepath.Join(dir, hardware.ClaimFile)
	good, _ := os.ReadFile(path)
	for name, content := range map[string]string{
		"not JSON":        "hardware",
		"unknown field":   `{"version":1,"backend":"cpu","matmul_mflops":1,"bandwidth_mbps":1,"layer_micros":1,"fingerprint":"` + zeros64() + `","extra":1}`,
		"other version":   `{"version":2,"backend":"cpu","matmul_mflops":1,"bandwidth_mbps":1,"layer_micros":1,"fingerprint":"` + zeros64() + `"}`,
		"short hex":       `{"version":1,"backend":"cpu","matmul_mflops":1,"bandwidth_mbps":1,"layer_micros":1,"fingerprint":"00ff"}`,
		"no figures":      `{"version":1,"backend":"cpu","fingerprint":"` + zeros64() + `"}`,
		"trailing object": string(good) + "{}",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := hardware.Load(dir); !errors.Is(err, hardware.ErrClaimFile) {
			t.Errorf("%s: %v, want ErrClaimFile", name, err)
		}
	}
}

func zeros64() string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

func TestCompare(t *testing.T) {
	old := exampleClaim("cpu/avx512-vnni×2")
	if ch := hardware.Compare(nil, old); !ch.First || ch.Significant() || ch.MultiplierAfter != 81 {
		t.Errorf("first claim: %+v", ch)
	}
	if ch := hardware.Compare(&old, old); ch.Significant() || ch.FingerprintChanged || ch.TierJump != 0 {
		t.Errorf("same claim again: %+v", ch)
	}
	moved := exampleClaim("cpu/avx512-vnni×4")
	if ch := hardware.Compare(&old, moved); !ch.FingerprintChanged || !ch.Significant() {
		t.Errorf("another backend: %+v, want the fingerprint changed", ch)
	}
	faster := old
	faster.Tier, faster.Multiplier = 3, 1000
	ch := hardware.Compare(&old, faster)
	if ch.FingerprintChanged || ch.TierJump != 3 || !ch.Significant() || ch.MultiplierBefore != 81 || ch.MultiplierAfter != 1000 {
		t.Errorf("a jump of three tiers: %+v", ch)
	}
}

// checkSane asserts figures of the order a real machine measures.
func checkSane(t *testing.T, f hardware.Figures) {
	t.Helper()
	if !(f.MatmulGFLOPS > 0.1 && f.MatmulGFLOPS < 1e7) || !(f.BandwidthGBps > 0.1 && f.BandwidthGBps < 1e5) ||
		!(f.LayerLatency > time.Microsecond && f.LayerLatency < time.Minute) {
		t.Errorf("implausible figures %+v", f)
	}
}

func TestMeasureQuick(t *testing.T) {
	be := newCPU(t, 2)
	var steps []string
	lastDone := 0.0
	m, err := hardware.Measure(context.Background(), be, hardware.WithQuick(true), hardware.WithThreads(2),
		hardware.WithProgress(func(p hardware.Progress) {
			if p.Done < lastDone || p.Index < 1 || p.Index > p.Steps {
				t.Errorf("progress %+v after %.3f done", p, lastDone)
			}
			lastDone = p.Done
			if len(steps) == 0 || steps[len(steps)-1] != p.Step {
				steps = append(steps, p.Step)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, m.Figures)
	if !m.Quick || m.Backend != be.Name() {
		t.Errorf("measurement %+v", m)
	}
	want := []string{"matmul", "bandwidth", "synthesize", "prefill", "decode"}
	if len(steps) != len(want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Fatalf("steps %v, want %v", steps, want)
		}
	}
	if lastDone != 1 {
		t.Errorf("progress ended at %.3f, want 1", lastDone)
	}
	t.Logf("quick: %.1f GFLOP/s, %.1f GB/s, layer %v (extrapolated), in %v", m.MatmulGFLOPS, m.BandwidthGBps, m.LayerLatency, m.Took)
}

func TestMeasureCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := hardware.Measure(ctx, newCPU(t, 1), hardware.WithQuick(true)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled benchmark: %v, want context.Canceled", err)
	}
}

func TestLoadOrMeasure(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	be := newCPU(t, 2)
	clock := func(at time.Time) hardware.Option { return hardware.WithClock(func() time.Time { return at }) }
	t1 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	first, err := hardware.LoadOrMeasure(ctx, dir, be, hardware.WithQuick(true), clock(t1))
	if err != nil {
		t.Fatal(err)
	}
	checkSane(t, first.Figures())
	if !first.MeasuredAt.Equal(t1) || first.Fingerprint != hardware.Describe(be.Name()).Fingerprint() || first.Backend != be.Name() {
		t.Errorf("first claim %+v", first)
	}
	if err := hardware.DefaultScale().Check(first); err != nil {
		t.Error(err)
	}
	if stored, err := hardware.Load(dir); err != nil || stored != first {
		t.Errorf("stored claim %+v (%v), want %+v", stored, err, first)
	}

	// Same device: the stored claim, not a new benchmark.
	again, err := hardware.LoadOrMeasure(ctx, dir, be, hardware.WithQuick(true), clock(t1.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("same device measured again: %+v", again)
	}

	// A full claim is wanted and only a quick one is stored: it measures (and
	// is stopped here by a cancelled context, which shows it tried).
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := hardware.LoadOrMeasure(cancelled, dir, be); !errors.Is(err, context.Canceled) {
		t.Errorf("full claim over a quick one: %v, want a benchmark (context.Canceled)", err)
	}

	// Another thread count is another device: measured afresh.
	t2 := t1.Add(2 * time.Hour)
	other, err := hardware.LoadOrMeasure(ctx, dir, newCPU(t, 1), hardware.WithQuick(true), hardware.WithThreads(1), clock(t2))
	if err != nil {
		t.Fatal(err)
	}
	if !other.MeasuredAt.Equal(t2) || other.Fingerprint == first.Fingerprint {
		t.Errorf("a changed backend reused the claim: %+v", other)
	}

	// A damaged file is measured over.
	if err := os.WriteFile(filepath.Join(dir, hardware.ClaimFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hardware.LoadOrMeasure(ctx, dir, be, hardware.WithQuick(true)); err != nil {
		t.Errorf("over a damaged file: %v", err)
	}
	if _, err := hardware.Load(dir); err != nil {
		t.Errorf("after measuring over a damaged file: %v", err)
	}
}
