// Package kernels is the arithmetic of imece: the Backend interface the layer engine
// computes with, the tensor types of model files and their block layouts, and the CPU
// backend.
//
// The CPU backend is pure Go with assembly for the hot loops (AVX2/FMA and AVX-512,
// selected at run time, with a portable fallback that is always correct). Weights stay
// in their stored format; matrix-vector products dequantize on the fly, block by block,
// because decoding is bound by memory bandwidth and reading four or eight bits per
// weight instead of thirty-two is the whole game.
//
// Decisions worth knowing:
//   - Quantized products quantize the activations once per call, as llama.cpp does
//     (32-value blocks for Q8_0/Q4_0 weights, Q8_K 256-value blocks for the
//     K-quants), and multiply integers. Results therefore differ from a float32
//     product by the activation rounding (half a step of each block's scale per
//     value); the tests bound exactly that. Activation scales stay float32.
//   - Dequantize and Quantize follow ggml-quants.c operation for operation in float32;
//     half values round to nearest even like F16C.
//   - A backend owns a pool of threads−1 worker goroutines; the calling goroutine
//     always works too, so concurrent sessions cannot starve each other. Per-call
//     scratch comes from a free list and only grows: decode steps do not allocate.
//
// It deliberately knows nothing about transformers beyond the handful of operations
// in Backend, nothing about files, and nothing about the network.
package kernels
