package hardware

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/imece/imece/ledger"
)

// Figures are the three measurements of a benchmark, or what a tier anchor's
// hardware is expected to measure.
type Figures struct {
	// MatmulGFLOPS is the throughput of the backend's MatMul on the standard
	// product (an f16 4096×4096 weight matrix times 128 rows), in 10⁹
	// floating-point operations per second.
	MatmulGFLOPS float64
	// BandwidthGBps is memory bandwidth (a STREAM triad), in 10⁹ bytes per second.
	BandwidthGBps float64
	// LayerLatency is the time to decode one token through one Llama-7B layer
	// in q8_0 with 512 positions in the KV cache.
	LayerLatency time.Duration
}

// The weights of the performance index (DESIGN.md §6, issue 5): prefill is
// compute-bound, decode bandwidth-bound, and the layer latency checks that the
// two are actually delivered by the backend the node serves with.
const (
	WeightMatmul    = 0.5
	WeightBandwidth = 0.3
	WeightLatency   = 0.2
)

// Term is one figure's part of the performance index.
type Term struct {
	// Ratio is the figure relative to the baseline's, oriented so that higher
	// is better: measured/baseline for throughput and bandwidth,
	// baseline/measured for latency.
	Ratio float64
	// Weight is the term's weight in the index.
	Weight float64
	// Contribution is Weight·Ratio.
	Contribution float64
}

// Breakdown is the performance index and how it came about.
type Breakdown struct {
	Matmul, Bandwidth, Latency Term
	// Index is the sum of the contributions: 1 for the baseline class.
	Index float64
}

// Score computes the performance index of f relative to baseline. A figure that
// is not a positive finite number contributes nothing, so a failed or absurd
// measurement can only lower the index.
func Score(f, baseline Figures) Breakdown {
	term := func(ratio, weight float64) Term {
		if !(ratio > 0) || math.IsInf(ratio, 0) {
			ratio = 0
		}
		return Term{Ratio: ratio, Weight: weight, Contribution: weight * ratio}
	}
	b := Breakdown{
		Matmul:    term(f.MatmulGFLOPS/baseline.MatmulGFLOPS, WeightMatmul),
		Bandwidth: term(f.BandwidthGBps/baseline.BandwidthGBps, WeightBandwidth),
		Latency:   term(float64(baseline.LayerLatency)/float64(f.LayerLatency), WeightLatency),
	}
	b.Index = b.Matmul.Contribution + b.Bandwidth.Contribution + b.Latency.Contribution
	return b
}

// Anchor is a tier's representative hardware: the figures it is expected to
// measure place the tier on the performance index.
//
// Vendors publish peaks, and a benchmark measures what a backend achieves, so an
// anchor's expected figures are its published peaks times the efficiencies
// below. The efficiencies are the same for every anchor, so they cancel out of
// the anchors' indices; they matter only when a measured device is compared with
// the anchors, which is the point: a real RTX 3060 should measure about the
// baseline, not 60% of it.
type Anchor struct {
	// Class is the tier's class, as named in the genesis tier table.
	Class string
	// Hardware names the representative part and the configuration the peaks
	// assume.
	Hardware string
	// PeakTFLOPS is the dense FP16 matrix peak in 10¹² FLOP/s: tensor or matrix
	// units with FP32 accumulation where the part has them (what a GEMM of f16
	// weights and f32 activations uses), the FP32 FMA peak of the vector units
	// otherwise (CPUs compute f16 products in f32).
	PeakTFLOPS float64
	// PeakGBps is the memory bandwidth of the spec sheet, 10⁹ bytes per second.
	PeakGBps float64
	// Baseline marks the class every ratio is taken against.
	Baseline bool
	// Source says where the peaks come from.
	Source string
}

// Efficiencies turn an anchor's published peaks into the figures this benchmark
// would measure on it.
const (
	// MatmulEfficiency: the share of the dense peak a tuned GEMM reaches on a
	// 4096×4096 by 128 product. cuBLAS and this repository's CPU kernels land at
	// 50–75% there (this repository's CPU backend: about 200 GFLOP/s on two
	// Sapphire Rapids cores whose AVX-512 FMA peak at 2.6 GHz is 333).
	MatmulEfficiency = 0.6
	// BandwidthEfficiency: STREAM triad over the spec-sheet bandwidth, typically
	// 75–90% on GPUs and 70–85% on desktop DDR.
	BandwidthEfficiency = 0.8
	// DecodeEfficiency: the share of spec-sheet bandwidth a single-token decode
	// step streams weights at. Decoding is bandwidth-bound (a layer reads all its
	// weights for one token), and llama.cpp-class engines reach 60–80% of peak;
	// the CPU backend streams a layer at 95–120% of its own triad figure (reading
	// is cheaper than the triad's writes).
	DecodeEfficiency = 0.7
)

// AnchorLayerBytes is what one decode step of the standard layer reads on an
// anchor: the q8_0 weights of a Llama-7B layer (215,023,616 bytes) and an f16
// KV cache of 512 positions (8,388,608 bytes). An anchor's layer latency is
// these bytes at DecodeEfficiency of its bandwidth.
const AnchorLayerBytes = 215_023_616 + 8_388_608

// Expected is the figures the anchor's hardware is expected to measure.
func (a Anchor) Expected() Figures {
	bw := a.PeakGBps * 1e9
	return Figures{
		MatmulGFLOPS:  a.PeakTFLOPS * 1e3 * MatmulEfficiency,
		BandwidthGBps: a.PeakGBps * BandwidthEfficiency,
		LayerLatency:  time.Duration(AnchorLayerBytes / (DecodeEfficiency * bw) * 1e9),
	}
}

// DefaultAnchors are the anchors of the eight tiers of ledger.DefaultGenesis,
// slowest first. Peaks are dense (no structured sparsity). For NVIDIA GeForce
// parts, whose tensor cores run FP32 accumulation at half the FP16-accumulate
// rate, the FP32-accumulate figure is used; data-centre parts run both at one
// rate.
func DefaultAnchors() []Anchor {
	return []Anchor{
		{
			Class:      "Mobile / Edge",
			Hardware:   "Raspberry Pi 5: 4× Cortex-A76 at 2.4 GHz, LPDDR4X-4267 on 32 bits",
			PeakTFLOPS: 0.1536, // 4 cores × 2.4 GHz × 16 FP32 FLOP/cycle (two 128-bit NEON FMA pipes)
			PeakGBps:   17.07,  // 4267 MT/s × 4 bytes
			Source:     "SoC and memory: Raspberry Pi 5 product brief, as tabulated at zbotic.in/raspberry-pi-5-benchmarks-real-performance-numbers-vs-pi-4; FLOP/cycle: Arm Cortex-A76 software optimization guide; products computed",
		},
		{
			Class:      "CPU only",
			Hardware:   "AMD Ryzen 7 5800X: 8 Zen 3 cores at 3.8 GHz base, DDR4-3200 in two channels",
			PeakTFLOPS: 0.9728, // 8 cores × 3.8 GHz × 32 FP32 FLOP/cycle (two 256-bit FMA pipes)
			PeakGBps:   51.2,   // 3200 MT/s × 8 bytes × 2 channels
			Source:     "cores, base clock: AMD product page, as tabulated at visualfoodie.com/ryzen-7-5800x-technical-specifications and techpowerup.com/review/amd-ryzen-7-5800x; products computed",
		},
		{
			Class:      "Entry consumer GPU",
			Hardware:   "AMD Radeon 780M (integrated, 12 RDNA 3 CUs at 2.7 GHz), DDR5-5600 in two channels",
			PeakTFLOPS: 16.59, // FP16 (WMMA, FP32 accumulate) = 2 × 8.294 FP32
			PeakGBps:   89.6,  // 5600 MT/s × 8 bytes × 2 channels
			Source:     "fpsbench.com/compare/gpu/amd-radeon-760m-vs-amd-radeon-780m (FP32 8.294, FP16 16.59 TFLOPS); memory: AMD Ryzen 7 8700G product page",
		},
		{
			Class:      "Mid consumer GPU (baseline)",
			Hardware:   "NVIDIA GeForce RTX 3060 12 GB: 112 tensor cores at 1.777 GHz, 192-bit GDDR6 at 15 Gbps",
			PeakTFLOPS: 25.3, // NVIDIA's 101 tensor TFLOPS are sparse FP16-accumulate: ÷2 dense, ÷2 FP32 accumulate
			PeakGBps:   360,
			Baseline:   true,
			Source:     "techtaks.com/geforce-rtx-3060-nvidia-finally-details-the-specifications (101 tensor TFLOPS, 13 shader TFLOPS); pcpartdb.com/gpus/view/nvidia-geforce-rtx-3060-12-gb-ga104 (360 GB/s, 112 tensor cores, 1777 MHz)",
		},
		{
			Class:      "High consumer GPU",
			Hardware:   "NVIDIA GeForce RTX 4080 16 GB: 256-bit GDDR6X at 22.4 Gbps",
			PeakTFLOPS: 97.5,  // 390 sparse FP16-accumulate ÷ 4
			PeakGBps:   716.8, // 22.4 Gbps × 32 bytes (launch material said 23 Gbps, 736 GB/s)
			Source:     "NVIDIA Ada Lovelace whitepaper, as tabulated at mobylak.com/nvidia-reveals-ada-lovelace-gpu-secrets-extreme-transistor-counts-at-high-clocks (FP16 390 TFLOPS sparse); fudzilla.net/news/graphics/55526 (256-bit GDDR6X)",
		},
		{
			Class:      "Prosumer GPU",
			Hardware:   "NVIDIA GeForce RTX 4090 24 GB: 384-bit GDDR6X at 21 Gbps",
			PeakTFLOPS: 165.2, // 661 sparse FP16-accumulate ÷ 4
			PeakGBps:   1008,
			Source:     "NVIDIA Ada Lovelace whitepaper, as tabulated at mobylak.com/nvidia-reveals-ada-lovelace-gpu-secrets-extreme-transistor-counts-at-high-clocks (FP16 661 TFLOPS sparse, 1008 GB/s)",
		},
		{
			Class:      "Professional accelerator",
			Hardware:   "NVIDIA L40S 48 GB: 384-bit GDDR6 at 18 Gbps",
			PeakTFLOPS: 362.05, // dense FP16 tensor (733 with sparsity)
			PeakGBps:   864,
			Source:     "NVIDIA L40S datasheet, as reproduced at mullet.se/product.html?product_id=355414 (FP16 tensor 362.05 dense, 864 GB/s)",
		},
		{
			Class:      "Data-centre accelerator",
			Hardware:   "NVIDIA H100 SXM5 80 GB HBM3",
			PeakTFLOPS: 989.4, // dense FP16 tensor (1,979 with sparsity)
			PeakGBps:   3350,
			Source:     "NVIDIA H100 datasheet, as reproduced at archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html (FP16 tensor 1,979 sparse, 3,350 GB/s) and glennklockwood.com/garden/processors/h100 (FP16 matrix 989.4 dense)",
		},
	}
}

// Scale maps figures to a tier and a multiplier: the anchors place the tiers on
// the performance index, the genesis tier table gives their multipliers.
// Between two anchors the multiplier is interpolated geometrically: with the
// index I between anchors Iₖ ≤ I < Iₖ₊₁ of multipliers mₖ, mₖ₊₁,
//
//	t = ln(I/Iₖ) / ln(Iₖ₊₁/Iₖ),   m = mₖ · (mₖ₊₁/mₖ)^t,
//
// a straight line between the anchors on log–log axes, because both the
// anchors' indices and the tier multipliers grow by roughly constant factors
// (0.05 → 8.00 over an index range of about 900). It is continuous and
// monotone: more performance never earns less. Below the first anchor the
// multiplier is the first tier's, above the last the last tier's (the cap). The
// tier is the highest whose anchor the index reaches (the first when it reaches
// none). A Scale is immutable.
type Scale struct {
	baseline Figures
	tiers    []TierAnchor
}

// TierAnchor is one tier as a Scale places it.
type TierAnchor struct {
	Name       string
	Hardware   string
	Index      float64
	Multiplier uint32 // milli
	// Baseline marks the baseline class (index 1).
	Baseline bool
}

// ErrScale: anchors and tiers that do not make a monotone scale.
var ErrScale = errors.New("hardware: invalid scale")

// NewScale builds the scale of anchors (one per tier, slowest first, exactly one
// marked Baseline) and the multipliers of tiers.
func NewScale(anchors []Anchor, tiers []ledger.Tier) (*Scale, error) {
	if len(anchors) == 0 || len(anchors) != len(tiers) || len(anchors) > math.MaxUint8 {
		return nil, fmt.Errorf("%w: %d anchors for %d tiers", ErrScale, len(anchors), len(tiers))
	}
	s := &Scale{}
	baselines := 0
	for _, a := range anchors {
		if a.Baseline {
			s.baseline = a.Expected()
			baselines++
		}
	}
	if baselines != 1 {
		return nil, fmt.Errorf("%w: %d anchors marked as the baseline, want 1", ErrScale, baselines)
	}
	for i, a := range anchors {
		if !(a.PeakTFLOPS > 0) || !(a.PeakGBps > 0) || math.IsInf(a.PeakTFLOPS, 0) || math.IsInf(a.PeakGBps, 0) {
			return nil, fmt.Errorf("%w: anchor %q has peaks %v TFLOP/s, %v GB/s", ErrScale, a.Class, a.PeakTFLOPS, a.PeakGBps)
		}
		t := TierAnchor{Name: tiers[i].Name, Hardware: a.Hardware, Index: Score(a.Expected(), s.baseline).Index, Multiplier: tiers[i].Multiplier, Baseline: a.Baseline}
		if t.Multiplier == 0 {
			return nil, fmt.Errorf("%w: tier %q has multiplier 0", ErrScale, t.Name)
		}
		if i > 0 {
			prev := s.tiers[i-1]
			if !(t.Index > prev.Index) || t.Multiplier < prev.Multiplier {
				return nil, fmt.Errorf("%w: tier %q (index %.4g, multiplier %d) does not rise above %q (index %.4g, multiplier %d)",
					ErrScale, t.Name, t.Index, t.Multiplier, prev.Name, prev.Index, prev.Multiplier)
			}
		}
		s.tiers = append(s.tiers, t)
	}
	return s, nil
}

// DefaultScale is the scale of DefaultAnchors and the tiers of
// ledger.DefaultGenesis.
func DefaultScale() *Scale {
	s, err := NewScale(DefaultAnchors(), ledger.DefaultGenesis().Tiers)
	if err != nil {
		panic(err) // constant data, checked by the tests
	}
	return s
}

// Baseline is what the baseline class's hardware is expected to measure.
func (s *Scale) Baseline() Figures { return s.baseline }

// Tiers are the scale's tiers, slowest first.
func (s *Scale) Tiers() []TierAnchor { return append([]TierAnchor(nil), s.tiers...) }

// Rating is where figures land on a Scale.
type Rating struct {
	Breakdown
	// Tier is the tier's position in the tier table, 0 for the first.
	Tier     int
	TierName string
	// Multiplier is the interpolated hardware multiplier in milli (1000 = 1.0).
	Multiplier uint32
}

// Rate places f on the scale.
func (s *Scale) Rate(f Figures) Rating {
	b := Score(f, s.baseline)
	r := s.rateIndex(b.Index)
	r.Breakdown = b
	return r
}

// rateIndex is the tier and multiplier of index i.
func (s *Scale) rateIndex(i float64) Rating {
	var r Rating
	last := len(s.tiers) - 1
	switch {
	case !(i > s.tiers[0].Index):
		r.Tier, r.Multiplier = 0, s.tiers[0].Multiplier
	case i >= s.tiers[last].Index:
		r.Tier, r.Multiplier = last, s.tiers[last].Multiplier
	default:
		k := 0
		for k+1 < last && i >= s.tiers[k+1].Index {
			k++
		}
		lo, hi := s.tiers[k], s.tiers[k+1]
		t := math.Log(i/lo.Index) / math.Log(hi.Index/lo.Index)
		m := float64(lo.Multiplier) * math.Pow(float64(hi.Multiplier)/float64(lo.Multiplier), t)
		r.Tier = k
		r.Multiplier = min(max(uint32(math.Round(m)), lo.Multiplier), hi.Multiplier)
	}
	r.TierName = s.tiers[r.Tier].Name
	return r
}
