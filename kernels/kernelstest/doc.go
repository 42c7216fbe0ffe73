// Package kernelstest is the conformance suite of kernels.Backend: the one set of
// checks every backend (the CPU one, OpenCL, and CUDA and Metal when they come)
// passes before the layer engine may run on it. A backend's own test calls
//
//	kernelstest.Conformance(t, be)
//
// Each kernel is compared with a straightforward float64 reference computed from
// the same inputs (weights as kernels.Dequantize decodes them), on random inputs
// of awkward sizes: widths that are not multiples of anything the backend might
// vectorise by, one row and several, batches on both sides of a tiled kernel's
// tile, grouped-query ratios 1, 2, 3 and 4, and positions deep into the cache.
// Then the end-to-end check: stories260K, greedy, from "Once upon a time", must
// give the reference text exactly.
//
// It is not a benchmark and not a fuzz test; it is deliberately small (a few
// seconds on a CPU OpenCL device) so that CI runs it for every backend it can.
//
// # Tolerances
//
// A matrix product is judged by its error relative to the magnitude of its terms,
// |got − ref| / Σ_c |x_c·w_c|, which does not blow up when terms cancel; the other
// kernels by |got − ref| / max(1, |ref|) (RoPE: divided again by 1 + position/8,
// since float32 sine and cosine of a large angle are a few ulps of the angle
// off). The inputs are seeded, so a run is deterministic. Bounds, and the worst
// errors measured (CPU backend on AVX-512 VNNI and pure Go; OpenCL on PoCL 3.1
// on the same CPU):
//
//	kernel              bound   CPU      OpenCL   why the bound
//	MatMul f32/f16/bf16 2e-6    8.1e-8   1.9e-7   float32 sums in another order
//	MatMul q8_0, q4_0   1e-2    6.5e-3   2.0e-7   the CPU rounds x to 8 bits a block, as llama.cpp does
//	MatMul q4_K, q6_K   1e-2    3.1e-3   2.2e-7   the same, in Q8_K blocks of 256
//	Rows (all types)    1e-6    0        0        decoding is exact up to a fused multiply-add
//	RMSNorm             2e-6    1.0e-7   1.6e-7   a float32 sum of squares on a device
//	RoPE (both)         2e-6    5.0e-8   5.0e-8   float32 sine and cosine
//	Attend              2e-5    3.2e-7   3.6e-7   exp approximations, summation order
//	SwiGLU              1e-6    1.3e-7   1.3e-7   exp approximations
//	Add                 0       0        0        one float32 addition
//
// go test -v prints the worst error of each check.
package kernelstest
