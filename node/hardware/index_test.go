package hardware_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node/hardware"
)

// scaled is the baseline's figures scaled by k (throughputs times k, latency
// over k): their index is exactly k.
func scaled(s *hardware.Scale, k float64) hardware.Figures {
	b := s.Baseline()
	return hardware.Figures{
		MatmulGFLOPS:  b.MatmulGFLOPS * k,
		BandwidthGBps: b.BandwidthGBps * k,
		LayerLatency:  time.Duration(float64(b.LayerLatency) / k),
	}
}

func TestScoreBreakdown(t *testing.T) {
	base := hardware.Figures{MatmulGFLOPS: 100, BandwidthGBps: 50, LayerLatency: time.Millisecond}
	for _, tc := range []struct {
		name string
		f    hardware.Figures
		// hand-computed: 0.5·matmul ratio + 0.3·bandwidth ratio + 0.2·latency ratio
		matmul, bandwidth, latency, index float64
	}{
		{"baseline", base, 0.5, 0.3, 0.2, 1},
		{"2× compute, half bandwidth, 4× latency", hardware.Figures{MatmulGFLOPS: 200, BandwidthGBps: 25, LayerLatency: 4 * time.Millisecond},
			1.0, 0.15, 0.05, 1.2},
		{"a tenth of everything", hardware.Figures{MatmulGFLOPS: 10, BandwidthGBps: 5, LayerLatency: 10 * time.Millisecond},
			0.05, 0.03, 0.02, 0.1},
		{"no figures", hardware.Figures{}, 0, 0, 0, 0},
		{"negative and NaN figures", hardware.Figures{MatmulGFLOPS: -5, BandwidthGBps: math.NaN(), LayerLatency: -time.Second}, 0, 0, 0, 0},
	} {
		b := hardware.Score(tc.f, base)
		got := []float64{b.Matmul.Contribution, b.Bandwidth.Contribution, b.Latency.Contribution, b.Index}
		want := []float64{tc.matmul, tc.bandwidth, tc.latency, tc.index}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("%s: contributions and index %v, want %v", tc.name, got, want)
				break
			}
		}
	}
}

// TestDefaultAnchors checks every anchor against its index computed by hand.
// The efficiencies cancel between an anchor and the baseline, and an anchor's
// latency is proportional to 1/bandwidth, so an anchor's index is
// 0.5·TFLOPS/25.3 + 0.5·GBps/360.
func TestDefaultAnchors(t *testing.T) {
	s := hardware.DefaultScale()
	want := []struct {
		name       string
		index      float64
		multiplier uint32
	}{
		{"Mobile / Edge", 0.5*0.1536/25.3 + 0.5*17.07/360, 50},             // 0.02674
		{"CPU only", 0.5*0.9728/25.3 + 0.5*51.2/360, 100},                  // 0.09034
		{"Entry consumer GPU", 0.5*16.59/25.3 + 0.5*89.6/360, 500},         // 0.4523
		{"Mid consumer GPU (baseline)", 1, 1000},                           //
		{"High consumer GPU", 0.5*97.5/25.3 + 0.5*716.8/360, 2000},         // 2.922
		{"Prosumer GPU", 0.5*165.2/25.3 + 0.5*1008/360, 3000},              // 4.665
		{"Professional accelerator", 0.5*362.05/25.3 + 0.5*864/360, 5000},  // 8.355
		{"Data-centre accelerator", 0.5*989.4/25.3 + 0.5*3350.0/360, 8000}, // 24.21
	}
	tiers := s.Tiers()
	if len(tiers) != len(want) {
		t.Fatalf("%d tiers, want %d", len(tiers), len(want))
	}
	for i, w := range want {
		got := tiers[i]
		if got.Name != w.name || math.Abs(got.Index-w.index) > 1e-6*w.index || got.Multiplier != w.multiplier {
			t.Errorf("tier %d: %s at index %.6f, multiplier %d; want %s at %.6f, %d", i, got.Name, got.Index, got.Multiplier, w.name, w.index, w.multiplier)
		}
		// An anchor's own expected figures rate exactly its tier and multiplier.
		r := s.Rate(hardware.DefaultAnchors()[i].Expected())
		if r.Tier != i || r.Multiplier != w.multiplier {
			t.Errorf("anchor %s rates tier %d at %d, want tier %d at %d", w.name, r.Tier, r.Multiplier, i, w.multiplier)
		}
	}
	if b := s.Baseline(); b.MatmulGFLOPS != 15180 || b.BandwidthGBps != 288 || b.LayerLatency.Round(time.Microsecond) != 887*time.Microsecond {
		t.Errorf("baseline %+v, want 15180 GFLOP/s (25.3 TFLOP/s × 0.6), 288 GB/s (360 × 0.8), 887 µs (223,412,224 B at 0.7 × 360 GB/s)", b)
	}
}

func TestRate(t *testing.T) {
	s := hardware.DefaultScale()
	tiers := s.Tiers()
	for _, tc := range []struct {
		name       string
		f          hardware.Figures
		tier       int
		multiplier uint32
	}{
		{"the baseline", scaled(s, 1), 3, 1000},
		// Geometric midpoint of two anchors: the geometric mean of their multipliers.
		{"between RTX 3060 and RTX 4080", scaled(s, math.Sqrt(tiers[3].Index*tiers[4].Index)), 3, 1414},                                 // √(1000·2000)
		{"between Raspberry Pi 5 and desktop CPU", scaled(s, math.Sqrt(tiers[0].Index*tiers[1].Index)), 0, 71},                          // √(50·100) = 70.7
		{"a third of the way from RTX 4090 to L40S", scaled(s, tiers[5].Index*math.Pow(tiers[6].Index/tiers[5].Index, 1.0/3)), 5, 3557}, // 3000·(5/3)^(1/3)
		// This machine's CPU (2 Sapphire Rapids cores), by hand: index
		// 0.5·193/15180 + 0.3·30.5/288 + 0.2·0.886556/7.44 = 0.0619599, between the
		// Raspberry Pi 5 (0.0267439) and the desktop CPU (0.0903364):
		// t = ln(0.0619599/0.0267439)/ln(0.0903364/0.0267439) = 0.690263,
		// multiplier 50·2^0.690263 = 80.69.
		{"two Sapphire Rapids cores", hardware.Figures{MatmulGFLOPS: 193, BandwidthGBps: 30.5, LayerLatency: 7440 * time.Microsecond}, 0, 81},
		// A measured H100 SXM reaching the anchor's efficiencies exactly:
		// 989.4 TFLOP/s × 0.6, 3350 GB/s × 0.8, 223,412,224 B at 0.7 × 3350 GB/s.
		{"H100 at the anchor", hardware.Figures{MatmulGFLOPS: 593_640, BandwidthGBps: 2680, LayerLatency: 95_271 * time.Nanosecond}, 7, 8000},
		{"H100 doing better than the anchor", hardware.Figures{MatmulGFLOPS: 750_000, BandwidthGBps: 3000, LayerLatency: 80 * time.Microsecond}, 7, 8000},
		{"far above the top: capped", scaled(s, 1000), 7, 8000},
		{"below the lowest anchor", hardware.Figures{MatmulGFLOPS: 5, BandwidthGBps: 2, LayerLatency: 200 * time.Millisecond}, 0, 50},
		{"nothing measured", hardware.Figures{}, 0, 50},
	} {
		r := s.Rate(tc.f)
		if r.Tier != tc.tier || r.Multiplier != tc.multiplier || r.TierName != tiers[tc.tier].Name {
			t.Errorf("%s: index %.6f rates tier %d (%s) at %d milli, want tier %d at %d", tc.name, r.Index, r.Tier, r.TierName, r.Multiplier, tc.tier, tc.multiplier)
		}
	}
}

// TestRateMonotone: more performance never earns less, and the multiplier has
// no jumps at the anchors.
func TestRateMonotone(t *testing.T) {
	s := hardware.DefaultScale()
	prev := s.Rate(scaled(s, 1e-3))
	for e := -3.0; e <= 3; e += 0.001 {
		r := s.Rate(scaled(s, math.Pow(10, e)))
		if r.Multiplier < prev.Multiplier || r.Tier < prev.Tier {
			t.Fatalf("index %.5f rates tier %d at %d, below index %.5f's tier %d at %d", r.Index, r.Tier, r.Multiplier, prev.Index, prev.Tier, prev.Multiplier)
		}
		prev = r
	}
	for i, a := range s.Tiers() {
		below := s.Rate(scaled(s, a.Index*(1-1e-9)))
		at := s.Rate(scaled(s, a.Index*(1+1e-9)))
		if at.Multiplier != a.Multiplier || at.Tier != i || at.Multiplier-below.Multiplier > 1 {
			t.Errorf("at anchor %s: %d milli just below, %d (tier %d) at it, want %d (tier %d)", a.Name, below.Multiplier, at.Multiplier, at.Tier, a.Multiplier, i)
		}
	}
}

func TestNewScaleRejects(t *testing.T) {
	tiers := ledger.DefaultGenesis().Tiers
	for _, tc := range []struct {
		name   string
		change func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier)
	}{
		{"fewer anchors than tiers", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) { return a[:7], tr }},
		{"no baseline", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			a[3].Baseline = false
			return a, tr
		}},
		{"two baselines", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			a[4].Baseline = true
			return a, tr
		}},
		{"anchors out of order", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			a[5], a[6] = a[6], a[5]
			return a, tr
		}},
		{"a zero peak", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			a[0].PeakGBps = 0
			return a, tr
		}},
		{"a zero multiplier", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			tr[0].Multiplier = 0
			return a, tr
		}},
		{"falling multipliers", func(a []hardware.Anchor, tr []ledger.Tier) ([]hardware.Anchor, []ledger.Tier) {
			tr[2].Multiplier = 50
			return a, tr
		}},
	} {
		a, tr := tc.change(hardware.DefaultAnchors(), append([]ledger.Tier(nil), tiers...))
		if _, err := hardware.NewScale(a, tr); !errors.Is(err, hardware.ErrScale) {
			t.Errorf("%s: %v, want ErrScale", tc.name, err)
		}
	}
}

// TestScaleFollowsGenesis: a network file with other multipliers rates the same
// figures with its own.
func TestScaleFollowsGenesis(t *testing.T) {
	tiers := ledger.DefaultGenesis().Tiers
	for i := range tiers {
		tiers[i].Multiplier *= 2
	}
	s, err := hardware.NewScale(hardware.DefaultAnchors(), tiers)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Rate(scaled(s, 1)); r.Multiplier != 2000 {
		t.Errorf("baseline rates %d milli with doubled multipliers, want 2000", r.Multiplier)
	}
}
