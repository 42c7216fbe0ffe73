//go:build amd64

#include "textflag.h"

// Attention inner loops (AVX2/FMA), head size a multiple of 8.

// func dotRowsAVX2(q *float32, k *float32, kstride, n, hd int, out *float32, scale float32) float32
// out[t] = scale · q·k[t·kstride : t·kstride+hd] for t < n (strides in floats), four
// rows at a time: four independent FMA chains, one horizontal-add tree for all four.
// It returns the largest out[t] (−Inf for n = 0), which softmax needs next.
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-60
	MOVQ         q+0(FP), SI
	MOVQ         k+8(FP), DI
	MOVQ         kstride+16(FP), BX
	SHLQ         $2, BX
	MOVQ         n+24(FP), CX
	MOVQ         hd+32(FP), DX
	MOVQ         out+40(FP), R8
	VBROADCASTSS scale+48(FP), X15
	LEAQ         (DI)(BX*1), R10
	LEAQ         (R10)(BX*1), R11
	LEAQ         (R11)(BX*1), R12
	LEAQ         (BX*4), R13
	MOVL         $0xff800000, AX
	VMOVD        AX, X14
	VBROADCASTSS X14, X14

dr4:
	CMPQ   CX, $4
	JLT    dr1
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

dr4col:
	VMOVUPS     (SI)(AX*4), Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS (R10)(AX*4), Y4, Y1
	VFMADD231PS (R11)(AX*4), Y4, Y2
	VFMADD231PS (R12)(AX*4), Y4, Y3
	ADDQ        $8, AX
	CMPQ        AX, DX
	JLT         dr4col
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMULPS       X15, X0, X0
	VMAXPS       X0, X14, X14
	VMOVUPS      X0, (R8)
	ADDQ         $16, R8
	ADDQ         R13, DI
	ADDQ         R13, R10
	ADDQ         R13, R11
	ADDQ         R13, R12
	SUBQ         $4, CX
	JMP          dr4

dr1:
	TESTQ  CX, CX
	JZ     drdone
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

dr1col:
	VMOVUPS     (SI)(AX*4), Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	CMPQ        AX, DX
	JLT         dr1col
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMULSS       X15, X0, X0
	VMAXSS       X0, X14, X14
	VMOVSS       X0, (R8)
	ADDQ         $4, R8
	ADDQ         BX, DI
	DECQ         CX
	JMP          dr1

drdone:
	VMOVHLPS X14, X14, X0
	VMAXPS   X0, X14, X14
	VPSHUFD  $1, X14, X0
	VMAXSS   X0, X14, X14
	VMOVSS   X14, ret+56(FP)
	VZEROUPPER
	RET

// func axpyRowsAVX2(out *float32, p *float32, v *float32, vstride, n, hd int)
// out[0:hd] += Σ_t p[t] · v[t·vstride : t·vstride+hd], 32 columns at a time held in
// registers while all n rows pass.
TEXT ·axpyRowsAVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), R10
	MOVQ vstride+24(FP), BX
	SHLQ $2, BX
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), DX

axcol:
	CMPQ    DX, $0
	JLE     axdone
	CMPQ    DX, $64
	JGE     ax64
	VMOVUPS (DI), Y0
	CMPQ    DX, $32
	JLT     ax8
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ    R10, R8
	XORQ    AX, AX

ax32row:
	CMPQ         AX, CX
	JGE          ax32store
	VBROADCASTSS (SI)(AX*4), Y4
	VFMADD231PS  (R8), Y4, Y0
	VFMADD231PS  32(R8), Y4, Y1
	VFMADD231PS  64(R8), Y4, Y2
	VFMADD231PS  96(R8), Y4, Y3
	ADDQ         BX, R8
	INCQ         AX
	JMP          ax32row

ax32store:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, R10
	SUBQ    $32, DX
	JMP     axcol

ax64:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y5
	VMOVUPS 160(DI), Y6
	VMOVUPS 192(DI), Y7
	VMOVUPS 224(DI), Y8
	MOVQ    R10, R8
	XORQ    AX, AX

ax64row:
	CMPQ         AX, CX
	JGE          ax64store
	VBROADCASTSS (SI)(AX*4), Y4
	VFMADD231PS  (R8), Y4, Y0
	VFMADD231PS  32(R8), Y4, Y1
	VFMADD231PS  64(R8), Y4, Y2
	VFMADD231PS  96(R8), Y4, Y3
	VFMADD231PS  128(R8), Y4, Y5
	VFMADD231PS  160(R8), Y4, Y6
	VFMADD231PS  192(R8), Y4, Y7
	VFMADD231PS  224(R8), Y4, Y8
	ADDQ         BX, R8
	INCQ         AX
	JMP          ax64row

ax64store:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y5, 128(DI)
	VMOVUPS Y6, 160(DI)
	VMOVUPS Y7, 192(DI)
	VMOVUPS Y8, 224(DI)
	ADDQ    $256, DI
	ADDQ    $256, R10
	SUBQ    $64, DX
	JMP     axcol

ax8:
	MOVQ R10, R8
	XORQ AX, AX

ax8row:
	CMPQ         AX, CX
	JGE          ax8store
	VBROADCASTSS (SI)(AX*4), Y4
	VFMADD231PS  (R8), Y4, Y0
	ADDQ         BX, R8
	INCQ         AX
	JMP          ax8row

ax8store:
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, R10
	SUBQ    $8, DX
	JMP     axcol

axdone:
	VZEROUPPER
	RET

// func expSubAVX2(x *float32, n int, m float32) float32
// x[i] = e^(x[i]−m) for i < n (a multiple of 8), returning Σ x[i]: the exponential
// of softmax. Same reduction and polynomial as expf; arguments below −87.3 clamp
// there (e^−87.3 ≈ 1e−38, nothing next to the maximum's 1).
TEXT ·expSubAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	VXORPS       Y14, Y14, Y14
	MOVL         $0xc2aea8a0, AX // −87.3293
	VMOVD        AX, X13
	VBROADCASTSS X13, Y13
	MOVL         $0x3fb8aa3b, AX // log2(e)
	VMOVD        AX, X12
	VBROADCASTSS X12, Y12
	MOVL         $0x3f318000, AX // ln2 high part 0.693359375
	VMOVD        AX, X11
	VBROADCASTSS X11, Y11
	MOVL         $0xb95e8083, AX // ln2 low part −2.12194440e−4
	VMOVD        AX, X10
	VBROADCASTSS X10, Y10
	MOVL         $0x3f800000, AX // 1
	VMOVD        AX, X9
	VBROADCASTSS X9, Y9
	SHRQ         $3, CX
	JZ           exdone

exloop:
	VMOVUPS      (DI), Y0
	VSUBPS       Y15, Y0, Y0
	VMAXPS       Y13, Y0, Y0
	VMULPS       Y12, Y0, Y1
	VROUNDPS     $0, Y1, Y1
	VFNMADD231PS Y11, Y1, Y0
	VFNMADD231PS Y10, Y1, Y0
	MOVL         $0x39506967, AX // 1.9875691500e-4
	VMOVD        AX, X2
	VBROADCASTSS X2, Y2
	MOVL         $0x3ab743ce, AX // 1.3981999507e-3
	VMOVD        AX, X3
	VBROADCASTSS X3, Y3
	VFMADD213PS  Y3, Y0, Y2
	MOVL         $0x3c088908, AX // 8.3334519073e-3
	VMOVD        AX, X3
	VBROADCASTSS X3, Y3
	VFMADD213PS  Y3, Y0, Y2
	MOVL         $0x3d2aa9c1, AX // 4.1665795894e-2
	VMOVD        AX, X3
	VBROADCASTSS X3, Y3
	VFMADD213PS  Y3, Y0, Y2
	MOVL         $0x3e2aaaaa, AX // 1.6666665459e-1
	VMOVD        AX, X3
	VBROADCASTSS X3, Y3
	VFMADD213PS  Y3, Y0, Y2
	MOVL         $0x3f000000, AX // 5.0000001201e-1
	VMOVD        AX, X3
	VBROADCASTSS X3, Y3
	VFMADD213PS  Y3, Y0, Y2
	VMULPS       Y0, Y0, Y3
	VFMADD213PS  Y0, Y3, Y2 // p·r² + r
	VADDPS       Y9, Y2, Y2 // + 1
	VCVTPS2DQ    Y1, Y1
	VPSLLD       $23, Y1, Y1
	VPADDD       Y9, Y1, Y1 // exponent bits of 2^k
	VMULPS       Y1, Y2, Y2
	VMOVUPS      Y2, (DI)
	VADDPS       Y2, Y14, Y14
	ADDQ         $32, DI
	DECQ         CX
	JNZ          exloop

exdone:
	VEXTRACTF128 $1, Y14, X0
	VADDPS       X14, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET
