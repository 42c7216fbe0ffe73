//go:build amd64

#include "textflag.h"

// Prefill tiles for the K-quants on AVX-512 VNNI: the 4-row × 8-token shape of
// gemm_amd64.s on raw Q4_K and Q6_K blocks against Q8_K activations in the same
// pair layout (acts and sa: 64 bytes per 32-value block and token pair).
//
// Q4_K: nibbles are unsigned already; each 32-value sub-block's scale d·sc
// (unpacked once per block and row onto the stack) multiplies its integer sums, and
// the mins come back once per block through asum (Σa·d_a per sub-block and token).
//
// Q6_K: 6-bit values (0..63) are rebuilt from ql/qh per 32-value block; each half
// of a block has its own scale, so the per-lane scale vector comes from the row's
// sixteen d·sc (on the stack) by VPERMPS. The −32 offset comes back once per block
// through asum (32·Σa·d_a per 16-value group and token).
//
// Registers: Z0–Z15 accumulators (row r, pair p in Z(4r+p)), Z16–Z19 the current
// block of four token pairs, Z20 the weights, Z21 their scales, Z22–Z25 products.
// SI R8 R9 R10 the four rows, DI acts, R11 sa, R12 asum, R13/R14 offsets into
// acts·sa and asum. Stack: 0 block counter, 8–23 scratch, 24 inner counter, from 32
// 64 bytes of scales per row.

DATA q6idx<>+0(SB)/4, $0
DATA q6idx<>+4(SB)/4, $0
DATA q6idx<>+8(SB)/4, $0
DATA q6idx<>+12(SB)/4, $0
DATA q6idx<>+16(SB)/4, $1
DATA q6idx<>+20(SB)/4, $1
DATA q6idx<>+24(SB)/4, $1
DATA q6idx<>+28(SB)/4, $1
DATA q6idx<>+32(SB)/4, $0
DATA q6idx<>+36(SB)/4, $0
DATA q6idx<>+40(SB)/4, $0
DATA q6idx<>+44(SB)/4, $0
DATA q6idx<>+48(SB)/4, $1
DATA q6idx<>+52(SB)/4, $1
DATA q6idx<>+56(SB)/4, $1
DATA q6idx<>+60(SB)/4, $1
GLOBL q6idx<>(SB), RODATA|NOPTR, $64

#define ZEROACC \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15

#define PROLOGUE \
	MOVQ w+0(FP), SI; \
	MOVQ wstride+8(FP), BX; \
	LEAQ (SI)(BX*1), R8; \
	LEAQ (R8)(BX*1), R9; \
	LEAQ (R9)(BX*1), R10; \
	MOVQ acts+24(FP), DI; \
	MOVQ sa+32(FP), R11; \
	MOVQ asum+40(FP), R12; \
	XORQ R13, R13; \
	XORQ R14, R14; \
	ZEROACC; \
	MOVL         $0x0f0f0f0f, AX; \
	VPBROADCASTD AX, Z26; \
	MOVQ         nsb+16(FP), AX; \
	MOVQ         AX, 0(SP)

#define LOADACTS \
	VMOVDQU32 (DI)(R13*1), Z16; \
	VMOVDQU32 64(DI)(R13*1), Z17; \
	VMOVDQU32 128(DI)(R13*1), Z18; \
	VMOVDQU32 192(DI)(R13*1), Z19

// One token pair: D = u8 weights · s8 activations, scaled by the activations' d
// (sa) and the weights' (Z21), into ACC.
#define PAIR(OFF, A, D, ACC) \
	VPXORD      D, D, D; \
	VPDPBUSD    A, Z20, D; \
	VCVTDQ2PS   D, D; \
	VMULPS      OFF(R11)(R13*1), D, D; \
	VFMADD231PS Z21, D, ACC

#define PAIRS(A0, A1, A2, A3) \
	PAIR(0, Z16, Z22, A0); \
	PAIR(64, Z17, Z23, A1); \
	PAIR(128, Z18, Z24, A2); \
	PAIR(192, Z19, Z25, A3)

// The block-level correction of row scales at SOFF(SP) (16 floats) against asum:
// for Q4_K the mins (eight at SOFF+32), for Q6_K both halves of the scales.
#define Q4KMINS(SOFF, A0, A1, A2, A3) \
	VBROADCASTF32X8 (SOFF+32)(SP), Z27; \
	VFNMADD231PS    0(R12)(R14*1), Z27, A0; \
	VFNMADD231PS    64(R12)(R14*1), Z27, A1; \
	VFNMADD231PS    128(R12)(R14*1), Z27, A2; \
	VFNMADD231PS    192(R12)(R14*1), Z27, A3

#define Q6KOFFSET(SOFF, A0, A1, A2, A3) \
	VBROADCASTF32X8 SOFF(SP), Z27; \
	VBROADCASTF32X8 (SOFF+32)(SP), Z28; \
	VFNMADD231PS    0(R12)(R14*1), Z27, A0; \
	VFNMADD231PS    64(R12)(R14*1), Z28, A0; \
	VFNMADD231PS    128(R12)(R14*1), Z27, A1; \
	VFNMADD231PS    192(R12)(R14*1), Z28, A1; \
	VFNMADD231PS    256(R12)(R14*1), Z27, A2; \
	VFNMADD231PS    320(R12)(R14*1), Z28, A2; \
	VFNMADD231PS    384(R12)(R14*1), Z27, A3; \
	VFNMADD231PS    448(R12)(R14*1), Z28, A3

// Q4_K scales and mins of the block at R, as ggml's utmp shuffle does it, to
// d·sc at SOFF(SP) and dmin·m at SOFF+32(SP). Uses AX BX CX DX R15 and 8–23(SP).
#define Q4KSCALES(R, SOFF) \
	MOVL         4(R), AX; \
	MOVL         8(R), BX; \
	MOVL         12(R), CX; \
	MOVL         CX, DX; \
	SHRL         $4, DX; \
	ANDL         $0x0f0f0f0f, DX; \
	MOVL         BX, R15; \
	SHRL         $6, R15; \
	ANDL         $0x03030303, R15; \
	SHLL         $4, R15; \
	ORL          R15, DX; \
	ANDL         $0x3f3f3f3f, BX; \
	ANDL         $0x0f0f0f0f, CX; \
	MOVL         AX, R15; \
	SHRL         $6, R15; \
	ANDL         $0x03030303, R15; \
	SHLL         $4, R15; \
	ORL          R15, CX; \
	ANDL         $0x3f3f3f3f, AX; \
	SHLQ         $32, CX; \
	ORQ          CX, AX; \
	SHLQ         $32, DX; \
	ORQ          DX, BX; \
	MOVQ         AX, 8(SP); \
	MOVQ         BX, 16(SP); \
	VPMOVZXBD    8(SP), Y27; \
	VCVTDQ2PS    Y27, Y27; \
	VPBROADCASTW (R), X28; \
	VCVTPH2PS    X28, Y28; \
	VMULPS       Y28, Y27, Y27; \
	VMOVUPS      Y27, SOFF(SP); \
	VPMOVZXBD    16(SP), Y27; \
	VCVTDQ2PS    Y27, Y27; \
	VPBROADCASTW 2(R), X28; \
	VCVTPH2PS    X28, Y28; \
	VMULPS       Y28, Y27, Y27; \
	VMOVUPS      Y27, (SOFF+32)(SP)

#define NOSHIFT(Y)
#define SHR4(Y) VPSRLW $4, Y, Y

// Q4_K sub-block of row R: the low (SHIFT = NOSHIFT) or high (SHR4) nibbles of the
// 32 bytes at 16+BX, its scale at SOFF+DX on the stack.
#define Q4KSUB(R, SHIFT, SOFF, A0, A1, A2, A3) \
	VMOVDQU32    16(R)(BX*1), Y27; \
	SHIFT(Y27); \
	VPANDD       Y26, Y27, Y27; \
	VINSERTI64X4 $1, Y27, Z27, Z20; \
	VBROADCASTSS SOFF(SP)(DX*1), Z21; \
	PAIRS(A0, A1, A2, A3)

#define Q4KSUBS(SHIFT, SOFF) \
	LOADACTS; \
	Q4KSUB(SI, SHIFT, SOFF, Z0, Z1, Z2, Z3); \
	Q4KSUB(R8, SHIFT, (SOFF+64), Z4, Z5, Z6, Z7); \
	Q4KSUB(R9, SHIFT, (SOFF+128), Z8, Z9, Z10, Z11); \
	Q4KSUB(R10, SHIFT, (SOFF+192), Z12, Z13, Z14, Z15); \
	ADDQ kstride+48(FP), R13

#define Q4KBLOCKSTART \
	Q4KSCALES(SI, 32); \
	Q4KSCALES(R8, 96); \
	Q4KSCALES(R9, 160); \
	Q4KSCALES(R10, 224); \
	XORQ BX, BX; \
	XORQ DX, DX; \
	MOVQ $4, 24(SP)

// Two sub-blocks (one 32-byte chunk of nibbles) per step of the inner loop.
#define Q4KCHUNK \
	Q4KSUBS(NOSHIFT, 32); \
	Q4KSUBS(SHR4, 36); \
	ADDQ $32, BX; \
	ADDQ $8, DX

#define Q4KBLOCKEND \
	Q4KMINS(32, Z0, Z1, Z2, Z3); \
	Q4KMINS(96, Z4, Z5, Z6, Z7); \
	Q4KMINS(160, Z8, Z9, Z10, Z11); \
	Q4KMINS(224, Z12, Z13, Z14, Z15); \
	ADDQ sstride+56(FP), R14; \
	ADDQ $144, SI; \
	ADDQ $144, R8; \
	ADDQ $144, R9; \
	ADDQ $144, R10

// Q6_K: the row's sixteen scales times d, to SOFF(SP).
#define Q6KSCALES(R, SOFF) \
	VPMOVSXBD    192(R), Z27; \
	VCVTDQ2PS    Z27, Z27; \
	VPBROADCASTW 208(R), Y28; \
	VCVTPH2PS    Y28, Z28; \
	VMULPS       Z28, Z27, Z27; \
	VMOVUPS      Z27, SOFF(SP)

#define SHL4(Y) VPSLLW $4, Y, Y
#define SHL2(Y) VPSLLW $2, Y, Y
#define SHR2(Y) VPSRLW $2, Y, Y

// Q6_K 32-value block of row R: four bits from the ql bytes at QL+BX (low nibbles,
// or high with QLSHIFT = SHR4), two from the qh bytes at 128+DX moved to bits 4–5
// by QHSHIFT; scales picked from SOFF(SP) by the index in Z29.
#define Q6KSUB(R, QL, QLSHIFT, QHSHIFT, SOFF, A0, A1, A2, A3) \
	VMOVDQU32    QL(R)(BX*1), Y27; \
	QLSHIFT(Y27); \
	VPANDD       Y26, Y27, Y27; \
	VMOVDQU32    128(R)(DX*1), Y28; \
	QHSHIFT(Y28); \
	VPANDD       Y31, Y28, Y28; \
	VPORD        Y28, Y27, Y27; \
	VINSERTI64X4 $1, Y27, Z27, Z20; \
	VPERMPS      SOFF(SP), Z29, Z21; \
	PAIRS(A0, A1, A2, A3)

#define Q6KSUBS(QL, QLSHIFT, QHSHIFT) \
	LOADACTS; \
	Q6KSUB(SI, QL, QLSHIFT, QHSHIFT, 32, Z0, Z1, Z2, Z3); \
	Q6KSUB(R8, QL, QLSHIFT, QHSHIFT, 96, Z4, Z5, Z6, Z7); \
	Q6KSUB(R9, QL, QLSHIFT, QHSHIFT, 160, Z8, Z9, Z10, Z11); \
	Q6KSUB(R10, QL, QLSHIFT, QHSHIFT, 224, Z12, Z13, Z14, Z15); \
	VPADDD Z30, Z29, Z29; \
	ADDQ   kstride+48(FP), R13

#define Q6KSETUP \
	MOVL         $0x30303030, AX; \
	VPBROADCASTD AX, Z31; \
	MOVL         $2, AX; \
	VPBROADCASTD AX, Z30

#define Q6KBLOCKSTART \
	Q6KSCALES(SI, 32); \
	Q6KSCALES(R8, 96); \
	Q6KSCALES(R9, 160); \
	Q6KSCALES(R10, 224); \
	VMOVDQU32 q6idx<>(SB), Z29; \
	XORQ BX, BX; \
	XORQ DX, DX; \
	MOVQ $2, 24(SP)

// Half a block (128 values): four 32-value blocks from 64 ql and 32 qh bytes.
#define Q6KHALF \
	Q6KSUBS(0, NOSHIFT, SHL4); \
	Q6KSUBS(32, NOSHIFT, SHL2); \
	Q6KSUBS(0, SHR4, NOSHIFT); \
	Q6KSUBS(32, SHR4, SHR2); \
	ADDQ $64, BX; \
	ADDQ $32, DX

#define Q6KBLOCKEND \
	Q6KOFFSET(32, Z0, Z1, Z2, Z3); \
	Q6KOFFSET(96, Z4, Z5, Z6, Z7); \
	Q6KOFFSET(160, Z8, Z9, Z10, Z11); \
	Q6KOFFSET(224, Z12, Z13, Z14, Z15); \
	ADDQ sstride+56(FP), R14; \
	ADDQ $210, SI; \
	ADDQ $210, R8; \
	ADDQ $210, R9; \
	ADDQ $210, R10

#define STORESET \
	VMOVUPS X25, (R14)

#define STOREADD \
	VADDPS  (R14), X25, X25; \
	VMOVUPS X25, (R14)

// Reduce the accumulators of pair P (rows 0..3 in R0..R3) to four row sums per
// token, stored at out + (2P)·ostride and out + (2P+1)·ostride for tokens < ntok.
#define REDUCEPAIR(P, R0, R1, R2, R3, DONE, STORE) \
	VUNPCKLPS     R1, R0, Z20; \
	VUNPCKHPS     R1, R0, Z21; \
	VADDPS        Z21, Z20, Z20; \
	VUNPCKLPS     R3, R2, Z22; \
	VUNPCKHPS     R3, R2, Z23; \
	VADDPS        Z23, Z22, Z22; \
	VUNPCKLPD     Z22, Z20, Z24; \
	VUNPCKHPD     Z22, Z20, Z25; \
	VADDPS        Z25, Z24, Z24; \
	VSHUFF32X4    $0xb1, Z24, Z24, Z25; \
	VADDPS        Z25, Z24, Z24; \
	CMPQ          R13, $(2*P); \
	JLE           DONE; \
	VEXTRACTF32X4 $0, Z24, X25; \
	STORE; \
	ADDQ          R15, R14; \
	CMPQ          R13, $(2*P+1); \
	JLE           DONE; \
	VEXTRACTF32X4 $2, Z24, X25; \
	STORE; \
	ADDQ          R15, R14

#define EPILOGUE(DONE, STORE) \
	MOVQ out+64(FP), R14; \
	MOVQ ostride+72(FP), R15; \
	MOVQ ntok+80(FP), R13; \
	REDUCEPAIR(0, Z0, Z4, Z8, Z12, DONE, STORE); \
	REDUCEPAIR(1, Z1, Z5, Z9, Z13, DONE, STORE); \
	REDUCEPAIR(2, Z2, Z6, Z10, Z14, DONE, STORE); \
	REDUCEPAIR(3, Z3, Z7, Z11, Z15, DONE, STORE)

// func gemmQ4KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ4KVNNI(SB), 0, $288-88
	PROLOGUE
	TESTQ AX, AX
	JZ    k4sred

k4sblock:
	Q4KBLOCKSTART

k4schunk:
	Q4KCHUNK
	DECQ 24(SP)
	JNZ  k4schunk
	Q4KBLOCKEND
	DECQ 0(SP)
	JNZ  k4sblock

k4sred:
	EPILOGUE(k4sdone, STORESET)

k4sdone:
	VZEROUPPER
	RET

// func gemmQ4KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ4KVNNIAdd(SB), 0, $288-88
	PROLOGUE
	TESTQ AX, AX
	JZ    k4ared

k4ablock:
	Q4KBLOCKSTART

k4achunk:
	Q4KCHUNK
	DECQ 24(SP)
	JNZ  k4achunk
	Q4KBLOCKEND
	DECQ 0(SP)
	JNZ  k4ablock

k4ared:
	EPILOGUE(k4adone, STOREADD)

k4adone:
	VZEROUPPER
	RET

// func gemmQ6KVNNI(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ6KVNNI(SB), 0, $288-88
	Q6KSETUP
	PROLOGUE
	TESTQ AX, AX
	JZ    k6sred

k6sblock:
	Q6KBLOCKSTART

k6shalf:
	Q6KHALF
	DECQ 24(SP)
	JNZ  k6shalf
	Q6KBLOCKEND
	DECQ 0(SP)
	JNZ  k6sblock

k6sred:
	EPILOGUE(k6sdone, STORESET)

k6sdone:
	VZEROUPPER
	RET

// func gemmQ6KVNNIAdd(w *byte, wstride, nsb int, acts *int8, sa *float32, asum *float32, kstride, sstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ6KVNNIAdd(SB), 0, $288-88
	Q6KSETUP
	PROLOGUE
	TESTQ AX, AX
	JZ    k6ared

k6ablock:
	Q6KBLOCKSTART

k6ahalf:
	Q6KHALF
	DECQ 24(SP)
	JNZ  k6ahalf
	Q6KBLOCKEND
	DECQ 0(SP)
	JNZ  k6ablock

k6ared:
	EPILOGUE(k6adone, STOREADD)

k6adone:
	VZEROUPPER
	RET
