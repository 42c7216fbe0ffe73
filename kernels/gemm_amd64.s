//go:build amd64

#include "textflag.h"

// Prefill tile for Q8_0 and Q4_0 weights on AVX-512 VNNI: 4 weight rows × 8 tokens.
// Each 512-bit register holds one 32-value block of two tokens (a token pair), so a
// weight block, broadcast to both halves and biased to unsigned (Q8_0: xor 0x80,
// Q4_0: the nibbles as they are), meets four token pairs with four VPDPBUSDs while
// it sits in a register. The bias comes back through corr (−bias/8·Σa per lane),
// the scales through sa (activation, per half) and the row's f16 d.
//
// The Add variants add to out instead of storing, for products split along k.
//
// Activation arrays (acts, sa, corr) are indexed alike: 64 bytes per (block, pair),
// pairs of a block contiguous, blocks kstride bytes apart.

#define PAIR(OFF, A, D, ACC) \
	VMOVDQU32   OFF(R12)(AX*1), D; \
	VPDPBUSD    A, Z20, D; \
	VCVTDQ2PS   D, D; \
	VMULPS      OFF(R11)(AX*1), D, D; \
	VFMADD231PS Z21, D, ACC

#define ROWSCALE(RP) \
	VPBROADCASTW (RP), Y27; \
	VCVTPH2PS    Y27, Z21

#define Q8WEIGHTS(RP) \
	VBROADCASTI64X4 2(RP), Z20; \
	VPXORD          Z26, Z20, Z20

#define Q4WEIGHTS(RP) \
	VMOVDQU32    2(RP), X20; \
	VPSRLW       $4, X20, X27; \
	VINSERTI32X4 $1, X27, Y20, Y20; \
	VPANDD       Y26, Y20, Y20; \
	VINSERTI64X4 $1, Y20, Z20, Z20

#define ROW(WEIGHTS, RP, A0, A1, A2, A3) \
	WEIGHTS(RP); \
	ROWSCALE(RP); \
	PAIR(0, Z16, Z22, A0); \
	PAIR(64, Z17, Z23, A1); \
	PAIR(128, Z18, Z24, A2); \
	PAIR(192, Z19, Z25, A3)

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

#define LOADARGS \
	MOVQ w+0(FP), SI; \
	MOVQ wstride+8(FP), BX; \
	MOVQ nb+16(FP), CX; \
	MOVQ acts+24(FP), DI; \
	MOVQ sa+32(FP), R11; \
	MOVQ corr+40(FP), R12; \
	MOVQ kstride+48(FP), DX; \
	LEAQ (SI)(BX*1), R8; \
	LEAQ (R8)(BX*1), R9; \
	LEAQ (R9)(BX*1), R10; \
	XORQ AX, AX

#define LOADACTS \
	VMOVDQU32 (DI)(AX*1), Z16; \
	VMOVDQU32 64(DI)(AX*1), Z17; \
	VMOVDQU32 128(DI)(AX*1), Z18; \
	VMOVDQU32 192(DI)(AX*1), Z19

// Reduce the accumulators of pair P (rows 0..3 in Z(P), Z(4+P), Z(8+P), Z(12+P)) to
// two vectors of four row sums, one per token, stored at out + (2P)·ostride and
// out + (2P+1)·ostride when those tokens exist.
#define STORESET \
	VMOVUPS X25, (R14)

#define STOREADD \
	VADDPS  (R14), X25, X25; \
	VMOVUPS X25, (R14)

#define REDUCEPAIR(P, R0, R1, R2, R3, DONE, STORE) \
	VUNPCKLPS    R1, R0, Z20; \
	VUNPCKHPS    R1, R0, Z21; \
	VADDPS       Z21, Z20, Z20; \
	VUNPCKLPS    R3, R2, Z22; \
	VUNPCKHPS    R3, R2, Z23; \
	VADDPS       Z23, Z22, Z22; \
	VUNPCKLPD    Z22, Z20, Z24; \
	VUNPCKHPD    Z22, Z20, Z25; \
	VADDPS       Z25, Z24, Z24; \
	VSHUFF32X4   $0xb1, Z24, Z24, Z25; \
	VADDPS       Z25, Z24, Z24; \
	CMPQ         R13, $(2*P); \
	JLE          DONE; \
	VEXTRACTF32X4 $0, Z24, X25; \
	STORE; \
	ADDQ         R15, R14; \
	CMPQ         R13, $(2*P+1); \
	JLE          DONE; \
	VEXTRACTF32X4 $2, Z24, X25; \
	STORE; \
	ADDQ         R15, R14

#define EPILOGUE(DONE, STORE) \
	MOVQ out+56(FP), R14; \
	MOVQ ostride+64(FP), R15; \
	MOVQ ntok+72(FP), R13; \
	REDUCEPAIR(0, Z0, Z4, Z8, Z12, DONE, STORE); \
	REDUCEPAIR(1, Z1, Z5, Z9, Z13, DONE, STORE); \
	REDUCEPAIR(2, Z2, Z6, Z10, Z14, DONE, STORE); \
	REDUCEPAIR(3, Z3, Z7, Z11, Z15, DONE, STORE)

// func gemmQ8_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ8_0VNNI(SB), 0, $0-80
	LOADARGS
	ZEROACC
	MOVL         $0x80808080, R13
	VPBROADCASTD R13, Z26

q8loop:
	LOADACTS
	ROW(Q8WEIGHTS, SI, Z0, Z1, Z2, Z3)
	ROW(Q8WEIGHTS, R8, Z4, Z5, Z6, Z7)
	ROW(Q8WEIGHTS, R9, Z8, Z9, Z10, Z11)
	ROW(Q8WEIGHTS, R10, Z12, Z13, Z14, Z15)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ DX, AX
	DECQ CX
	JNZ  q8loop

	EPILOGUE(q8done, STORESET)

q8done:
	VZEROUPPER
	RET

// func gemmQ8_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ8_0VNNIAdd(SB), 0, $0-80
	LOADARGS
	ZEROACC
	MOVL         $0x80808080, R13
	VPBROADCASTD R13, Z26

q8aloop:
	LOADACTS
	ROW(Q8WEIGHTS, SI, Z0, Z1, Z2, Z3)
	ROW(Q8WEIGHTS, R8, Z4, Z5, Z6, Z7)
	ROW(Q8WEIGHTS, R9, Z8, Z9, Z10, Z11)
	ROW(Q8WEIGHTS, R10, Z12, Z13, Z14, Z15)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ DX, AX
	DECQ CX
	JNZ  q8aloop

	EPILOGUE(q8adone, STOREADD)

q8adone:
	VZEROUPPER
	RET

// func gemmQ4_0VNNI(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ4_0VNNI(SB), 0, $0-80
	LOADARGS
	ZEROACC
	MOVL         $0x0f0f0f0f, R13
	VPBROADCASTD R13, Z26

q4loop:
	LOADACTS
	ROW(Q4WEIGHTS, SI, Z0, Z1, Z2, Z3)
	ROW(Q4WEIGHTS, R8, Z4, Z5, Z6, Z7)
	ROW(Q4WEIGHTS, R9, Z8, Z9, Z10, Z11)
	ROW(Q4WEIGHTS, R10, Z12, Z13, Z14, Z15)
	ADDQ $18, SI
	ADDQ $18, R8
	ADDQ $18, R9
	ADDQ $18, R10
	ADDQ DX, AX
	DECQ CX
	JNZ  q4loop

	EPILOGUE(q4done, STORESET)

q4done:
	VZEROUPPER
	RET

// func gemmQ4_0VNNIAdd(w *byte, wstride, nb int, acts *int8, sa *float32, corr *int32, kstride int, out *float32, ostride, ntok int)
TEXT ·gemmQ4_0VNNIAdd(SB), 0, $0-80
	LOADARGS
	ZEROACC
	MOVL         $0x0f0f0f0f, R13
	VPBROADCASTD R13, Z26

q4aloop:
	LOADACTS
	ROW(Q4WEIGHTS, SI, Z0, Z1, Z2, Z3)
	ROW(Q4WEIGHTS, R8, Z4, Z5, Z6, Z7)
	ROW(Q4WEIGHTS, R9, Z8, Z9, Z10, Z11)
	ROW(Q4WEIGHTS, R10, Z12, Z13, Z14, Z15)
	ADDQ $18, SI
	ADDQ $18, R8
	ADDQ $18, R9
	ADDQ $18, R10
	ADDQ DX, AX
	DECQ CX
	JNZ  q4aloop

	EPILOGUE(q4adone, STOREADD)

q4adone:
	VZEROUPPER
	RET
