//go:build amd64

package kernels

import "github.com/klauspost/cpuid/v2"

// CPU features, detected once. AVX2 paths also need FMA and F16C (VCVTPH2PS); the
// AVX-512 path uses VNNI's VPDPBUSD on 256-bit registers (AVX512VL) for decode and on
// 512-bit ones for prefill.
var (
	hasAVX2   = cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3, cpuid.F16C)
	hasAVX512 = hasAVX2 && cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512VL, cpuid.AVX512VNNI)
)

// availableKernels lists the instruction sets usable here, best last.
func availableKernels() []*kernelSet {
	sets := []*kernelSet{genericKernels()}
	if hasAVX2 {
		k := sets[0].clone("avx2")
		k.quantQ8 = quantQ8Asm
		k.quantQ8K = quantQ8KAsm
		k.dotF32 = dotF32Asm
		k.axpy = axpyAsm
		k.widenF16 = widenF16Asm
		k.dotRows = dotRowsAsm
		k.axpyRows = axpyRowsAsm
		k.expSub = expSubAsm
		k.swiglu = swigluAsm
		k.tiles[F32] = tileFloatX4(f32DotX4AVX2, tileF32Asm)
		k.tiles[F16] = tileFloatX4(f16DotX4AVX2, tileF16Asm)
		k.tiles[BF16] = tileFloatX4(bf16DotX4AVX2, tileBF16Asm)
		k.tiles[Q8_0] = tileX4(q8_0DotX4AVX2, q8_0Len)
		k.tiles[Q4_0] = tileX4(q4_0DotX4AVX2, q4_0Len)
		k.tiles[Q4_K] = tileKX4(q4KDotX4AVX2)
		k.tiles[Q6_K] = tileKX4(q6KDotX4AVX2)
		sets = append(sets, k)
	}
	if hasAVX512 {
		k := sets[len(sets)-1].clone("avx512-vnni")
		k.tiles[Q8_0] = tileGemm(gemmQ8_0VNNI, gemmQ8_0VNNIAdd, q8_0Len, tileX4(q8_0DotX4VNNI, q8_0Len))
		k.tiles[Q4_0] = tileGemm(gemmQ4_0VNNI, gemmQ4_0VNNIAdd, q4_0Len, tileX4(q4_0DotX4VNNI, q4_0Len))
		k.tiles[F32] = tileGemmFloat(gemmF32x512, gemmF32x512Add, 4, k.tiles[F32])
		k.tiles[F16] = tileGemmFloat(gemmF16x512, gemmF16x512Add, 2, k.tiles[F16])
		k.ownF16Gemm = true
		k.tiles[Q4_K] = tileGemmK(gemmQ4KVNNI, gemmQ4KVNNIAdd, Q4_K, k.tiles[Q4_K])
		k.tiles[Q6_K] = tileGemmK(gemmQ6KVNNI, gemmQ6KVNNIAdd, Q6_K, k.tiles[Q6_K])
		k.gemmLayout[Q4_K] = true
		k.gemmLayout[Q6_K] = true
		k.gemmLayout[Q8_0] = true
		k.gemmLayout[Q4_0] = true
		sets = append(sets, k)
	}
	return sets
}

func triad(a, b, c []float32, s float32) {
	if hasAVX2 && len(a) >= 32 {
		n := len(a) &^ 31
		triadAVX2(&a[0], &b[0], &c[0], s, n)
		triadGo(a[n:], b[n:], c[n:], s)
		return
	}
	triadGo(a, b, c, s)
}
