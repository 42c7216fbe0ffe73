// Package opencl runs the layer engine's kernels on an OpenCL device, loaded at
// run time through purego (no cgo): the same binary uses an AMD, Intel or
// NVIDIA card that has an OpenCL driver, or falls back to the CPU, and the GPU
// code path is tested on a machine without a GPU through PoCL, a CPU OpenCL
// implementation (Debian's pocl-opencl-icd).
//
// # What runs where
//
// Kernels (kernels.cl, OpenCL C 1.2, compiled for the device at start):
// matrix products of F32 weights, RMSNorm, SwiGLU and the residual add. Weights
// of other types (F16, Q8_0, Q4_0, K-quants), the embedding lookup, RoPE and
// attention run on the CPU backend the Backend wraps, and a weight type
// without a device kernel is logged once. Every method takes host slices
// (kernels.Backend), so activations are copied to the device and back on each
// call: correct everywhere, fast nowhere yet.
//
// A device that fails mid-call (an OpenCL error) is given up: that call and
// every later one run on the CPU, so the text never changes, and Err says why.
//
// # Conformance
//
// backend_test.go compares each device kernel with the CPU backend on random
// inputs of awkward sizes (rows and widths not multiples of anything, one and
// several rows), and runs stories260K greedily on the device: the reference
// text exactly. Measured on PoCL 3.1 (AVX-512 CPU), worst absolute
// differences: matrix products 2.4e-7 to 1.7e-5 (the tolerance is 1e-4
// relative or absolute: the device sums in another order), RMSNorm 4.8e-7,
// SwiGLU 6.0e-8, add 0. The tests skip with a message where no OpenCL library
// or device is found.
//
// # Next
//
// Device-resident state needs an engine-level interface beside
// kernels.Backend: an optional LayerRunner that pipeline/llama uses when the
// backend has one, which owns a session's KV cache on the device, takes a
// layer range and a batch of positions, and runs the whole range in one
// launch sequence (norm, Q/K/V products, RoPE, attention against the device
// cache, output product, FFN), so that only the hop's input and output
// activations cross the bus. Then quantized matrix-vector kernels that
// dequantize in registers (Q8_0, Q4_0, Q4_K, Q6_K blocks as kernels/dtype.go
// lays them out), a tiled matrix-matrix kernel for prefill, and the same
// kernels in PTX (kernels/cuda, CUDA driver API through purego) and Metal
// Shading Language (kernels/metal, through purego's Objective-C runtime).
package opencl
