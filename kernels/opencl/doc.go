// Package opencl runs the layer engine's kernels on an OpenCL device, loaded at
// run time through purego (no cgo): the same binary uses an AMD, Intel or NVIDIA
// card that has an OpenCL driver, and the GPU code path is tested on machines
// without a GPU through PoCL, a CPU OpenCL implementation (Debian's
// pocl-opencl-icd). It is one implementation of kernels.Backend; choosing
// between backends is kernels/backends' job, not this package's.
//
// # Loading
//
// The ICD loader is libOpenCL.so.1 (or libOpenCL.so) on Linux,
// /System/Library/Frameworks/OpenCL.framework/OpenCL on macOS (dlopen through
// purego) and OpenCL.dll on Windows (the standard syscall package's
// LoadLibrary; purego calls the functions there too). Static builds
// (-tags nodlopen) cannot load libraries and report ErrUnavailable. Every
// function is resolved at New, so a partial library fails there, by name.
//
// # Devices
//
// Devices are ranked GPUs first, then accelerators, then CPUs, platform by
// platform; New takes the first unless WithDevice or WithDeviceName says
// otherwise. The kernels (kernels.cl, OpenCL C 1.2 with no extensions, so PoCL,
// Mesa's rusticl and every vendor driver compile them) are built at New for the
// chosen device; a compile failure returns the compiler's log.
//
// # What runs where
//
// Everything in kernels.Backend runs on the device, for every weight type of
// kernels/dtype.go (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K): the weights are
// uploaded once, in NewMatrix, in their stored block layout, and the products
// dequantize them in registers as they read them. Decode (and batches under 4
// tokens) takes a matrix-vector kernel: on a GPU one work-group per output row
// whose items stride over the row, on a CPU device (PoCL) one work item per
// row, since there a work-group is a loop on one core and scheduling thousands
// of them costs more than the arithmetic; prefill takes a tiled kernel, 16 rows × 16 tokens
// per work-group, that dequantizes each 16×32 slab of weights into local memory
// once for all 16 tokens. Activations are multiplied in float32 (the CPU
// backend quantizes them to 8 bits for quantized weights, as llama.cpp does),
// so the device's products are the closer of the two to exact arithmetic.
// RMSNorm and attention reduce within a work-group (attention: one work-group
// per query and head, three passes over the visible positions); RoPE, SwiGLU,
// the residual add and the embedding lookup are one work item per element.
//
// A weight matrix the device cannot hold (larger than its largest buffer, or
// device memory full) stays on the CPU backend the Backend wraps, logged once;
// a device that fails mid-call (any OpenCL error) is given up: that call and
// every later one compute on the CPU, so generation never stops or changes
// text, and Err says why. Calls are serialised by one mutex around the queue.
//
// # Copies, and what comes next
//
// kernels.Backend passes host slices, so every call copies its activations to
// the device and its result back, and Attend copies the whole K/V cache of
// the layer each time: correct everywhere, and on a discrete GPU bound by the
// bus rather than the device. The copies are kept to the inputs the kernel
// reads and the one output it writes (dst is never uploaded, scratch buffers
// only grow). Removing them needs an engine-level interface, proposed here:
//
//	// In kernels, implemented optionally by a device backend.
//	type LayerEngine interface {
//		// NewCache allocates a session's K/V cache on the device: layers ×
//		// maxLen × KVHeads × HeadDim, f16 or f32.
//		NewCache(layers, maxLen, kvDim int, dt DType) (Cache, error)
//		// Run pushes n rows of activations (host memory) through layers
//		// [first, last) of a LayerSpec (the stage's matrices and norms,
//		// already on the device), appends their K/V to the cache at pos,
//		// and returns the output rows (or, for the last stage, logits of
//		// the last row) to host memory.
//		Run(c Cache, spec *LayerSpec, pos int, x []float32, out []float32) error
//	}
//
// pipeline/llama would use it when the backend has it (a type assertion on
// Stage's backend) and keep today's per-operation path otherwise, so the CPU
// backend is untouched. A decode step then costs one upload of Dim floats, one
// launch sequence enqueued without waiting (norm, Q/K/V products, RoPE writing
// K straight into the cache, attention reading the device cache, output
// product, FFN, per layer), and one download, with no host synchronisation
// in between; prefill the same with n rows. The cache lives as long as the
// pipeline session, which already owns the host cache, and failover rebuilds
// it from retained inputs as today. The same interface is what CUDA (driver
// API and NVRTC through purego, graph capture of the launch sequence) and
// Metal (one command buffer per step) implement, so the three device backends
// share the engine-side code and the conformance suite (kernels/kernelstest)
// extends to Run by comparing it with the per-operation path.
//
// # Numbers
//
// kernels/kernelstest holds every backend to the same bounds; on PoCL 3.1
// (AVX-512 CPU) the worst errors against a float64 reference are 2.2e-7 of the
// terms' magnitude for matrix products of every weight type (the CPU backend:
// 8e-8 for float weights, 3e-3 to 6.5e-3 for quantized ones, its activation
// rounding), 0 for the embedding lookup and the add, 1.6e-7 for RMSNorm, 5e-8
// for RoPE, 3.6e-7 for attention and 1.3e-7 for SwiGLU, and stories260K's
// greedy text is the reference exactly.
//
// Speed on PoCL (bench_test.go; 2 shared cores of an AMD EPYC, host triad
// ≈ 31 GB/s): stories260K decodes at ≈ 100 tokens/s against the CPU backend's
// ≈ 10,000 (≈ 70 launches a token, each with its copies, through PoCL's
// scheduler), and a 4-layer 1024-wide Q8_0 model (48 MiB a token) at ≈ 38
// tokens/s, 1.9 GB/s or 6% of the triad, against the CPU backend's ≈ 470
// tokens/s at 75%. PoCL is a test vehicle for the GPU code path, never the
// faster way to use a CPU; auto in kernels/backends picks the CPU backend
// there by measurement.
package opencl
