// Package hardware is the node's hardware claim (DESIGN.md §6): a benchmark of
// the backend the node serves with, the performance index and hardware tier it
// rates at, the multiplier its credits are scaled by, and a fingerprint of the
// device that measured it.
//
// # The benchmark
//
// Measure times three things on a kernels.Backend, each for a fixed budget,
// keeping the best run (about 10 s in all on two server cores; WithQuick takes a
// few hundred milliseconds, for tests):
//
//   - matmul: the backend's MatMul of an f16 4096×4096 weight matrix by 128
//     rows, a prefill-sized product, in GFLOP/s. f16 because it is the one type
//     every vendor publishes a peak for, so anchors and measurements speak of
//     the same thing.
//   - bandwidth: a STREAM triad (kernels.MeasureBandwidth, or the backend's own
//     when it implements BandwidthMeter), in GB/s.
//   - layer latency: one token decoded through one Llama-2-7B layer (dim 4096,
//     32 heads, FFN 11008, q8_0) with 512 positions cached, synthesized in
//     memory and run by pipeline/llama, the engine the node serves with.
//
// # Index, tiers, multiplier
//
// Score combines them into the performance index 0.5·matmul + 0.3·bandwidth +
// 0.2·latency, each a ratio to the baseline class (RTX 3060; for latency the
// baseline's over the measured). Scale places the eight tiers of the genesis
// tier table on that index by anchors: each tier's representative hardware
// (DefaultAnchors, with its published peaks and their sources) and the figures
// it is expected to measure (peaks times MatmulEfficiency, BandwidthEfficiency
// and DecodeEfficiency). The multiplier interpolates geometrically between
// adjacent anchors, is the first tier's below the first anchor and is capped at
// the last tier's above the last. The index, tier and multiplier math is pure.
//
// # Claims
//
// A Claim carries the figures as integers, the tier and multiplier they rate at
// (recomputable by anyone: Scale.Check), the device fingerprint (Device: CPU,
// features, cores, memory, backend and accelerators; no volatile data) and the
// backend. LoadOrMeasure keeps the last claim in <data>/hardware.json and reuses
// it while the fingerprint is unchanged, so a node does not benchmark at every
// start; Compare says how a new claim differs from the previous one.
//
// What it deliberately is not: the ledger's enforcement (the KindHardware block,
// the quarantine a changed fingerprint or tier jump starts, the cap by
// throughput clients observe: package ledger, fed by node.Ledger.SetHardware),
// GPU backends (which add their device and may
// implement BandwidthMeter), or flags and output (cmd/imece: `imece bench`).
package hardware
