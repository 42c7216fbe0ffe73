//go:build amd64

#include "textflag.h"

#define PFDIST 1024

#define PREFETCHROW(R) \
	PREFETCHT0 PFDIST(R); \
	PREFETCHT0 (PFDIST+64)(R); \
	PREFETCHT0 (PFDIST+128)(R); \
	PREFETCHT0 (PFDIST+192)(R)

#define PREFETCH4 \
	PREFETCHROW(SI); \
	PREFETCHROW(R8); \
	PREFETCHROW(R9); \
	PREFETCHROW(R10)

// K-quant matrix-vector kernels (AVX2): four weight rows, stride bytes apart,
// against one activation row in Q8_K blocks (256 int8, a float32 d, sixteen int16
// sums of 16); sums to out[0], out[ostride], out[2·ostride], out[3·ostride].
//
// Q4_K: sub-block products come from VPMADDUBSW (unsigned nibbles × signed
// activations) and VPMADDWD against the sub-block's 6-bit scale; the mins meet the
// activation's bsums once per block. The packed scales are unpacked in general
// registers as ggml's AVX2 code does (the utmp shuffle) and spilled to the stack,
// from where each scale is broadcast.

// Unpack the 12 scale bytes at 4(R) into 8 scales and 8 mins as 16 words at 0(SP).
#define Q4KSCALES(R) \
	MOVL        4(R), AX; \
	MOVL        8(R), BX; \
	MOVL        12(R), R12; \
	MOVL        R12, R13; \
	SHRL        $4, R13; \
	ANDL        $0x0f0f0f0f, R13; \
	MOVL        BX, R15; \
	SHRL        $6, R15; \
	ANDL        $0x03030303, R15; \
	SHLL        $4, R15; \
	ORL         R15, R13; \
	ANDL        $0x3f3f3f3f, BX; \
	ANDL        $0x0f0f0f0f, R12; \
	MOVL        AX, R15; \
	SHRL        $6, R15; \
	ANDL        $0x03030303, R15; \
	SHLL        $4, R15; \
	ORL         R15, R12; \
	ANDL        $0x3f3f3f3f, AX; \
	SHLQ        $32, R12; \
	ORQ         R12, AX; \
	SHLQ        $32, R13; \
	ORQ         R13, BX; \
	VMOVQ       AX, X8; \
	VPINSRQ     $1, BX, X8, X8; \
	VPMOVZXBW   X8, Y8; \
	VMOVDQU     Y8, 0(SP)

// One 64-value chunk C: sub-blocks 2C (low nibbles) and 2C+1 (high nibbles).
#define Q4KCHUNK(R, C) \
	VMOVDQU      (16+32*C)(R), Y10; \
	VPSRLW       $4, Y10, Y11; \
	VPAND        Y6, Y10, Y10; \
	VPAND        Y6, Y11, Y11; \
	VPMADDUBSW   (64*C)(DI), Y10, Y10; \
	VPMADDUBSW   (64*C+32)(DI), Y11, Y11; \
	VPBROADCASTW (4*C)(SP), Y12; \
	VPMADDWD     Y12, Y10, Y10; \
	VPBROADCASTW (4*C+2)(SP), Y12; \
	VPMADDWD     Y12, Y11, Y11; \
	VPADDD       Y10, Y7, Y7; \
	VPADDD       Y11, Y7, Y7

#define Q4KROW(R, ACC) \
	Q4KSCALES(R); \
	VPXOR        Y7, Y7, Y7; \
	Q4KCHUNK(R, 0); \
	Q4KCHUNK(R, 1); \
	Q4KCHUNK(R, 2); \
	Q4KCHUNK(R, 3); \
	VCVTDQ2PS    Y7, Y7; \
	VPBROADCASTW (R), X12; \
	VCVTPH2PS    X12, Y12; \
	VMULPS       Y4, Y12, Y12; \
	VFMADD231PS  Y12, Y7, ACC; \
	VMOVDQU      16(SP), X10; \
	VPMADDWD     X5, X10, X10; \
	VCVTDQ2PS    Y10, Y10; \
	VPBROADCASTW 2(R), X12; \
	VCVTPH2PS    X12, Y12; \
	VMULPS       Y4, Y12, Y12; \
	VFNMADD231PS Y12, Y10, ACC

// func q4KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)
TEXT ·q4KDotX4AVX2(SB), NOSPLIT, $64-64
	MOVQ         w+0(FP), SI
	MOVQ         stride+8(FP), BX
	MOVQ         nb+16(FP), CX
	MOVQ         aq+24(FP), DI
	MOVQ         ad+32(FP), DX
	MOVQ         bsums+40(FP), R11
	LEAQ         (SI)(BX*1), R8
	LEAQ         (R8)(BX*1), R9
	LEAQ         (R9)(BX*1), R10
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X6
	VPBROADCASTD X6, Y6
	TESTQ        CX, CX
	JZ           q4kdone

q4kloop:
	PREFETCH4
	VBROADCASTSS (DX), Y4
	VMOVDQU      (R11), Y5
	VEXTRACTI128 $1, Y5, X10
	VPHADDW      X10, X5, X5
	Q4KROW(SI, Y0)
	Q4KROW(R8, Y1)
	Q4KROW(R9, Y2)
	Q4KROW(R10, Y3)
	ADDQ         $144, SI
	ADDQ         $144, R8
	ADDQ         $144, R9
	ADDQ         $144, R10
	ADDQ         $256, DI
	ADDQ         $4, DX
	ADDQ         $32, R11
	DECQ         CX
	JNZ          q4kloop

q4kdone:
	VEXTRACTF128 $1, Y0, X4
	VADDPS       X4, X0, X0
	VEXTRACTF128 $1, Y1, X4
	VADDPS       X4, X1, X1
	VEXTRACTF128 $1, Y2, X4
	VADDPS       X4, X2, X2
	VEXTRACTF128 $1, Y3, X4
	VADDPS       X4, X3, X3
	VHADDPS      X1, X0, X0
	VHADDPS      X3, X2, X2
	VHADDPS      X2, X0, X0
	MOVQ         out+48(FP), AX
	MOVQ         ostride+56(FP), BX
	SHLQ         $2, BX
	VMOVSS       X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $1, X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $2, X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $3, X0, (AX)
	VZEROUPPER
	RET

// Q6_K: 6-bit values (0..63, four low bits in ql, two high in qh) are unsigned for
// VPMADDUBSW; their −32 offset returns once per block as −32·Σ scale·bsum. Each
// 32-value vector spans two 16-value groups, so its scale vector holds two int8
// scales, one per 128-bit lane, for VPMADDWD.

#define SCALEPAIR(OFF) \
	VPBROADCASTW OFF(SP), X12; \
	VPBROADCASTW (OFF+2)(SP), X14; \
	VINSERTI128  $1, X14, Y12, Y12

#define Q6KACC(A, OFF) \
	VPMADDUBSW A(DI), Y11, Y11; \
	SCALEPAIR(OFF); \
	VPMADDWD   Y12, Y11, Y11; \
	VPADDD     Y11, Y7, Y7

#define Q6KHALF(R, N) \
	VMOVDQU (64*N)(R), Y8; \
	VMOVDQU (64*N+32)(R), Y9; \
	VMOVDQU (128+32*N)(R), Y10; \
	VPAND   Y6, Y8, Y11; \
	VPSLLW  $4, Y10, Y12; \
	VPAND   Y13, Y12, Y12; \
	VPOR    Y12, Y11, Y11; \
	Q6KACC((128*N), (16*N)); \
	VPAND   Y6, Y9, Y11; \
	VPSLLW  $2, Y10, Y12; \
	VPAND   Y13, Y12, Y12; \
	VPOR    Y12, Y11, Y11; \
	Q6KACC((128*N+32), (16*N+4)); \
	VPSRLW  $4, Y8, Y11; \
	VPAND   Y6, Y11, Y11; \
	VPAND   Y13, Y10, Y12; \
	VPOR    Y12, Y11, Y11; \
	Q6KACC((128*N+64), (16*N+8)); \
	VPSRLW  $4, Y9, Y11; \
	VPAND   Y6, Y11, Y11; \
	VPSRLW  $2, Y10, Y12; \
	VPAND   Y13, Y12, Y12; \
	VPOR    Y12, Y11, Y11; \
	Q6KACC((128*N+96), (16*N+12))

#define Q6KROW(R, ACC) \
	VPMOVSXBW    192(R), Y8; \
	VMOVDQU      Y8, 0(SP); \
	VPMADDWD     Y5, Y8, Y8; \
	VPSLLD       $5, Y8, Y8; \
	VPXOR        Y7, Y7, Y7; \
	VPSUBD       Y8, Y7, Y7; \
	Q6KHALF(R, 0); \
	Q6KHALF(R, 1); \
	VCVTDQ2PS    Y7, Y7; \
	VPBROADCASTW 208(R), X12; \
	VCVTPH2PS    X12, Y12; \
	VMULPS       Y4, Y12, Y12; \
	VFMADD231PS  Y12, Y7, ACC

// func q6KDotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, bsums *int16, out *float32, ostride int)
TEXT ·q6KDotX4AVX2(SB), NOSPLIT, $64-64
	MOVQ         w+0(FP), SI
	MOVQ         stride+8(FP), BX
	MOVQ         nb+16(FP), CX
	MOVQ         aq+24(FP), DI
	MOVQ         ad+32(FP), DX
	MOVQ         bsums+40(FP), R11
	LEAQ         (SI)(BX*1), R8
	LEAQ         (R8)(BX*1), R9
	LEAQ         (R9)(BX*1), R10
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	MOVL         $0x0f0f0f0f, AX
	VMOVD        AX, X6
	VPBROADCASTD X6, Y6
	MOVL         $0x30303030, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, Y13
	TESTQ        CX, CX
	JZ           q6kdone

q6kloop:
	PREFETCH4
	VBROADCASTSS (DX), Y4
	VMOVDQU      (R11), Y5
	Q6KROW(SI, Y0)
	Q6KROW(R8, Y1)
	Q6KROW(R9, Y2)
	Q6KROW(R10, Y3)
	ADDQ         $210, SI
	ADDQ         $210, R8
	ADDQ         $210, R9
	ADDQ         $210, R10
	ADDQ         $256, DI
	ADDQ         $4, DX
	ADDQ         $32, R11
	DECQ         CX
	JNZ          q6kloop

q6kdone:
	VEXTRACTF128 $1, Y0, X4
	VADDPS       X4, X0, X0
	VEXTRACTF128 $1, Y1, X4
	VADDPS       X4, X1, X1
	VEXTRACTF128 $1, Y2, X4
	VADDPS       X4, X2, X2
	VEXTRACTF128 $1, Y3, X4
	VADDPS       X4, X3, X3
	VHADDPS      X1, X0, X0
	VHADDPS      X3, X2, X2
	VHADDPS      X2, X0, X0
	MOVQ         out+48(FP), AX
	MOVQ         ostride+56(FP), BX
	SHLQ         $2, BX
	VMOVSS       X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $1, X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $2, X0, (AX)
	ADDQ         BX, AX
	VEXTRACTPS   $3, X0, (AX)
	VZEROUPPER
	RET
