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
// It deliberately knows nothing about transformers beyond the handful of operations
// in Backend, nothing about files, and nothing about the network.
//
// # Numbers
//
// Dequantize and Quantize follow ggml-quants.c operation for operation in float32
// (quantize_row_*_ref, make_qkx2_quants, make_qx_quants); half values round to
// nearest even like F16C. A C compiler may contract a·b+c into one FMA where Go
// does not, so an exotic input can land one rounding step away from llama.cpp's
// bytes; decoded values are exact.
//
// Quantized products quantize the activations once per call, as llama.cpp does
// (32-value Q8 blocks for Q8_0/Q4_0 weights, Q8_K 256-value blocks for the K-quants),
// and multiply integers. Results therefore differ from a float32 product by the
// activation rounding: at most half a step of each block's scale per value (the tests
// bound exactly that). Activation scales stay float32. Every instruction set computes
// the same integer sums, so they agree with the generic code up to float summation
// order (relative 1e-4 in the tests).
//
// # Instruction sets
//
// "generic" is pure Go. "avx2" (AVX2+FMA+F16C) adds the sign trick of ggml for
// Q8_0 (|w| unsigned × a·sign(w) signed, VPMADDUBSW/VPMADDWD), VPMADDUBSW against
// unsigned nibbles with the offset folded into per-block sums (Q4_0, Q4_K, Q6_K),
// VCVTPH2PS for F16 and FMA everywhere. "avx512-vnni" (AVX-512 F/BW/VL/VNNI) uses
// VPDPBUSD for decode and a 4-row × 8-token prefill tile for Q8_0/Q4_0 on 512-bit
// registers (weights biased to unsigned, the bias returned through the activations'
// block sums) and, on raw Q4_K/Q6_K blocks, the same tile with the sub-block scales
// applied in float; a 4-row × 6-token float tile serves F32/F16 prefill. Other
// architectures build only the generic set (isa_other.go).
//
// # Parallelism and memory
//
// A backend owns threads−1 worker goroutines; the calling goroutine always takes a
// share too, so concurrent sessions cannot starve each other, and workers spin
// briefly before sleeping so the ~150 products of a decode step do not each pay a
// wake-up. Rows are split in chunks; within a chunk a decode kernel reads four rows
// a quarter of the chunk apart, because one core streams several distant regions of
// memory about twice as fast as one. Per-call scratch comes from a free list and only
// grows: decode steps do not allocate.
//
// Attention uses the online softmax. Prefill splits it over (query, KV head), the
// query heads of a group taking turns on chunks of 128 cached positions so the cache
// is read once per group; decode splits the cached positions among the workers and
// merges their partial sums, so each streams one contiguous stretch of the cache.
//
// # Using it well (for the layer engine)
//
//   - One backend per process, WithThreads = physical cores (the default,
//     runtime.NumCPU(), is right on machines without SMT).
//   - Prefill with one MatMul of all prompt tokens (n > 1): the prefill tiles read
//     each weight block once per tile of tokens; n separate decode calls read the
//     whole matrix n times.
//   - Keep activations contiguous, n rows of exactly Cols floats; K/V caches
//     position-major as Attention documents; HeadDim a multiple of 8 takes the
//     vector path.
//   - Weights can be memory-mapped GGUF data as is; nothing is copied or
//     dequantized up front. OpenBLAS (found at run time, or WithBLAS) serves float
//     prefill of 16 tokens or more, on Linux and macOS; Windows and static builds
//     (-tags nodlopen: purego needs the dynamic loader) use the built-in kernels.
package kernels
