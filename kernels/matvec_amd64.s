//go:build amd64

#include "textflag.h"

// Matrix-vector kernels: four weight rows (stride bytes apart) against one activation
// row quantized to 32-value blocks, nb blocks, four sums to out[0], out[ostride],
// out[2·ostride], out[3·ostride]. Callers space the rows far apart: a core streams
// several distant regions of memory faster than one.
//
// Q8_0 uses the sign trick (|w| unsigned times a·sign(w) signed) so the unsigned×
// signed instructions need no bias correction. Q4_0 nibbles are unsigned already;
// the −8 offset comes back as −Σa per block (a lane each of eight gives −8·Σa).

#define PFDIST 1024

#define SETUP4 \
	MOVQ w+0(FP), SI; \
	MOVQ stride+8(FP), BX; \
	MOVQ nb+16(FP), CX; \
	MOVQ aq+24(FP), DI; \
	MOVQ ad+32(FP), DX; \
	LEAQ (SI)(BX*1), R8; \
	LEAQ (R8)(BX*1), R9; \
	LEAQ (R9)(BX*1), R10; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3

#define REDUCE4 \
	VEXTRACTF128 $1, Y0, X4; \
	VADDPS X4, X0, X0; \
	VEXTRACTF128 $1, Y1, X4; \
	VADDPS X4, X1, X1; \
	VEXTRACTF128 $1, Y2, X4; \
	VADDPS X4, X2, X2; \
	VEXTRACTF128 $1, Y3, X4; \
	VADDPS X4, X3, X3; \
	VHADDPS X1, X0, X0; \
	VHADDPS X3, X2, X2; \
	VHADDPS X2, X0, X0; \
	MOVQ out+48(FP), AX; \
	MOVQ ostride+56(FP), BX; \
	SHLQ $2, BX; \
	VMOVSS X0, (AX); \
	ADDQ BX, AX; \
	VEXTRACTPS $1, X0, (AX); \
	ADDQ BX, AX; \
	VEXTRACTPS $2, X0, (AX); \
	ADDQ BX, AX; \
	VEXTRACTPS $3, X0, (AX); \
	VZEROUPPER

// Scale of one row-block: f16 d of the weights times the activation's d (in Y14).
#define SCALE(R, T) \
	VPBROADCASTW (R), X8; \
	VCVTPH2PS X8, T; \
	VMULPS Y14, T, T

#define Q8ROW_VNNI(R, ACC) \
	VMOVDQU 2(R), Y4; \
	VPABSB Y4, Y5; \
	VPSIGNB Y4, Y15, Y6; \
	VPXOR Y7, Y7, Y7; \
	VPDPBUSD Y6, Y5, Y7; \
	VCVTDQ2PS Y7, Y7; \
	SCALE(R, Y9); \
	VFMADD231PS Y9, Y7, ACC

#define Q8ROW_AVX2(R, ACC) \
	VMOVDQU 2(R), Y4; \
	VPABSB Y4, Y5; \
	VPSIGNB Y4, Y15, Y6; \
	VPMADDUBSW Y6, Y5, Y7; \
	VPMADDWD Y13, Y7, Y7; \
	VCVTDQ2PS Y7, Y7; \
	SCALE(R, Y9); \
	VFMADD231PS Y9, Y7, ACC

// func q8_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)
TEXT ·q8_0DotX4VNNI(SB), NOSPLIT, $0-64
	SETUP4
	TESTQ CX, CX
	JZ    q8vdone

q8vloop:
	PREFETCHT0   PFDIST(SI)
	PREFETCHT0   PFDIST(R8)
	PREFETCHT0   PFDIST(R9)
	PREFETCHT0   PFDIST(R10)
	VMOVDQU      (DI), Y15
	VBROADCASTSS (DX), Y14
	Q8ROW_VNNI(SI, Y0)
	Q8ROW_VNNI(R8, Y1)
	Q8ROW_VNNI(R9, Y2)
	Q8ROW_VNNI(R10, Y3)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNZ  q8vloop

q8vdone:
	REDUCE4
	RET

// func q8_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)
TEXT ·q8_0DotX4AVX2(SB), NOSPLIT, $0-64
	SETUP4
	MOVL         $0x00010001, AX
	VMOVD         AX, X13
	VPBROADCASTD X13, Y13
	TESTQ        CX, CX
	JZ           q8adone

q8aloop:
	PREFETCHT0   PFDIST(SI)
	PREFETCHT0   PFDIST(R8)
	PREFETCHT0   PFDIST(R9)
	PREFETCHT0   PFDIST(R10)
	VMOVDQU      (DI), Y15
	VBROADCASTSS (DX), Y14
	Q8ROW_AVX2(SI, Y0)
	Q8ROW_AVX2(R8, Y1)
	Q8ROW_AVX2(R9, Y2)
	Q8ROW_AVX2(R10, Y3)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNZ  q8aloop

q8adone:
	REDUCE4
	RET

// Q4_0 row: 16 bytes of nibbles become 32 unsigned bytes (low nibbles first).
#define Q4NIBBLES(R) \
	VMOVDQU     2(R), X4; \
	VPSRLW      $4, X4, X5; \
	VINSERTI128 $1, X5, Y4, Y4; \
	VPAND       Y12, Y4, Y4

#define Q4ROW_VNNI(R, ACC) \
	Q4NIBBLES(R); \
	VMOVDQA   Y11, Y7; \
	VPDPBUSD  Y15, Y4, Y7; \
	VCVTDQ2PS Y7, Y7; \
	SCALE(R, Y9); \
	VFMADD231PS Y9, Y7, ACC

#define Q4ROW_AVX2(R, ACC) \
	Q4NIBBLES(R); \
	VPMADDUBSW Y15, Y4, Y7; \
	VPMADDWD   Y13, Y7, Y7; \
	VPADDD     Y11, Y7, Y7; \
	VCVTDQ2PS  Y7, Y7; \
	SCALE(R, Y9); \
	VFMADD231PS Y9, Y7, ACC

#define Q4SETUP \
	MOVQ         as+40(FP), R11; \
	MOVL         $0x0f0f0f0f, AX; \
	VMOVD         AX, X12; \
	VPBROADCASTD X12, Y12; \
	MOVL         $0x00010001, AX; \
	VMOVD         AX, X13; \
	VPBROADCASTD X13, Y13; \
	VPXOR        Y10, Y10, Y10

// Y11 = −Σa of the block in every lane.
#define Q4BLOCK \
	VMOVDQU      (DI), Y15; \
	VBROADCASTSS (DX), Y14; \
	VPBROADCASTD (R11), Y11; \
	VPSUBD       Y11, Y10, Y11

#define ADVANCE18 \
	ADDQ $18, SI; \
	ADDQ $18, R8; \
	ADDQ $18, R9; \
	ADDQ $18, R10; \
	ADDQ $32, DI; \
	ADDQ $4, DX; \
	ADDQ $4, R11

// func q4_0DotX4VNNI(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)
TEXT ·q4_0DotX4VNNI(SB), NOSPLIT, $0-64
	SETUP4
	Q4SETUP
	TESTQ CX, CX
	JZ    q4vdone

q4vloop:
	PREFETCHT0   PFDIST(SI)
	PREFETCHT0   PFDIST(R8)
	PREFETCHT0   PFDIST(R9)
	PREFETCHT0   PFDIST(R10)
	Q4BLOCK
	Q4ROW_VNNI(SI, Y0)
	Q4ROW_VNNI(R8, Y1)
	Q4ROW_VNNI(R9, Y2)
	Q4ROW_VNNI(R10, Y3)
	ADVANCE18
	DECQ CX
	JNZ  q4vloop

q4vdone:
	REDUCE4
	RET

// func q4_0DotX4AVX2(w *byte, stride, nb int, aq *int8, ad *float32, as *int32, out *float32, ostride int)
TEXT ·q4_0DotX4AVX2(SB), NOSPLIT, $0-64
	SETUP4
	Q4SETUP
	TESTQ CX, CX
	JZ    q4adone

q4aloop:
	PREFETCHT0   PFDIST(SI)
	PREFETCHT0   PFDIST(R8)
	PREFETCHT0   PFDIST(R9)
	PREFETCHT0   PFDIST(R10)
	Q4BLOCK
	Q4ROW_AVX2(SI, Y0)
	Q4ROW_AVX2(R8, Y1)
	Q4ROW_AVX2(R9, Y2)
	Q4ROW_AVX2(R10, Y3)
	ADVANCE18
	DECQ CX
	JNZ  q4aloop

q4adone:
	REDUCE4
	RET
