//go:build amd64

#include "textflag.h"

DATA permQ8<>+0(SB)/4, $0
DATA permQ8<>+4(SB)/4, $4
DATA permQ8<>+8(SB)/4, $1
DATA permQ8<>+12(SB)/4, $5
DATA permQ8<>+16(SB)/4, $2
DATA permQ8<>+20(SB)/4, $6
DATA permQ8<>+24(SB)/4, $3
DATA permQ8<>+28(SB)/4, $7
GLOBL permQ8<>(SB), RODATA|NOPTR, $32

// func quantQ8AVX2(x *float32, nb int, qs *int8, d *float32, sum *int32)
// The same arithmetic as quantizeQ8Blocks: d = amax/127, q = x·(127/amax) rounded
// to nearest even (VCVTPS2DQ under the default rounding mode), sum = Σq.
TEXT ·quantQ8AVX2(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         nb+8(FP), CX
	MOVQ         qs+16(FP), DI
	MOVQ         d+24(FP), DX
	MOVQ         sum+32(FP), R8
	MOVL         $0x7fffffff, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	MOVL         $0x42fe0000, AX // 127.0
	VMOVD        AX, X14
	VMOVDQU      permQ8<>(SB), Y13
	TESTQ        CX, CX
	JZ           qdone

qloop:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VANDPS       Y15, Y0, Y4
	VANDPS       Y15, Y1, Y5
	VMAXPS       Y5, Y4, Y4
	VANDPS       Y15, Y2, Y5
	VMAXPS       Y5, Y4, Y4
	VANDPS       Y15, Y3, Y5
	VMAXPS       Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VMAXPS       X5, X4, X4
	VMOVHLPS     X4, X4, X5
	VMAXPS       X5, X4, X4
	VPSHUFD      $1, X4, X5
	VMAXSS       X5, X4, X4
	VDIVSS       X14, X4, X5
	VMOVSS       X5, (DX)
	VXORPS       X6, X6, X6
	VUCOMISS     X6, X4
	JEQ          qzero
	VDIVSS       X4, X14, X6

qzero:
	VBROADCASTSS X6, Y6
	VMULPS       Y6, Y0, Y0
	VMULPS       Y6, Y1, Y1
	VMULPS       Y6, Y2, Y2
	VMULPS       Y6, Y3, Y3
	VCVTPS2DQ    Y0, Y0
	VCVTPS2DQ    Y1, Y1
	VCVTPS2DQ    Y2, Y2
	VCVTPS2DQ    Y3, Y3
	VPADDD       Y1, Y0, Y7
	VPADDD       Y3, Y2, Y8
	VPADDD       Y8, Y7, Y7
	VEXTRACTI128 $1, Y7, X8
	VPADDD       X8, X7, X7
	VPHADDD      X7, X7, X7
	VPHADDD      X7, X7, X7
	VMOVD        X7, (R8)
	VPACKSSDW    Y1, Y0, Y0
	VPACKSSDW    Y3, Y2, Y2
	VPACKSSWB    Y2, Y0, Y0
	VPERMD       Y0, Y13, Y0
	VMOVDQU      Y0, (DI)
	ADDQ         $128, SI
	ADDQ         $32, DI
	ADDQ         $4, DX
	ADDQ         $4, R8
	DECQ         CX
	JNZ          qloop

qdone:
	VZEROUPPER
	RET

// func maxMinAVX2(x *float32, n int) (mx, mn float32)
// n a positive multiple of 32.
TEXT ·maxMinAVX2(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	SHRQ    $5, CX
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1

mmloop:
	VMOVUPS (SI), Y2
	VMOVUPS 32(SI), Y3
	VMOVUPS 64(SI), Y4
	VMOVUPS 96(SI), Y5
	VMAXPS  Y2, Y0, Y0
	VMINPS  Y2, Y1, Y1
	VMAXPS  Y3, Y0, Y0
	VMINPS  Y3, Y1, Y1
	VMAXPS  Y4, Y0, Y0
	VMINPS  Y4, Y1, Y1
	VMAXPS  Y5, Y0, Y0
	VMINPS  Y5, Y1, Y1
	ADDQ    $128, SI
	DECQ    CX
	JNZ     mmloop
	VEXTRACTF128 $1, Y0, X2
	VMAXPS       X2, X0, X0
	VMOVHLPS     X0, X0, X2
	VMAXPS       X2, X0, X0
	VPSHUFD      $1, X0, X2
	VMAXSS       X2, X0, X0
	VEXTRACTF128 $1, Y1, X2
	VMINPS       X2, X1, X1
	VMOVHLPS     X1, X1, X2
	VMINPS       X2, X1, X1
	VPSHUFD      $1, X1, X2
	VMINSS       X2, X1, X1
	VMOVSS       X0, mx+16(FP)
	VMOVSS       X1, mn+20(FP)
	VZEROUPPER
	RET

// func quantQ8KAVX2(x *float32, n int, iscale float32, qs *int8)
// qs[i] = min(127, round-to-even(iscale·x[i])), n a multiple of 32: the value
// loop of quantize_row_q8_K_ref.
TEXT ·quantQ8KAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS iscale+16(FP), Y15
	MOVQ         qs+24(FP), DI
	MOVL         $127, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	VMOVDQU      permQ8<>(SB), Y13
	SHRQ         $5, CX
	JZ           qkdone

qkloop:
	VMULPS    (SI), Y15, Y0
	VMULPS    32(SI), Y15, Y1
	VMULPS    64(SI), Y15, Y2
	VMULPS    96(SI), Y15, Y3
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y2, Y2
	VCVTPS2DQ Y3, Y3
	VPMINSD   Y14, Y0, Y0
	VPMINSD   Y14, Y1, Y1
	VPMINSD   Y14, Y2, Y2
	VPMINSD   Y14, Y3, Y3
	VPACKSSDW Y1, Y0, Y0
	VPACKSSDW Y3, Y2, Y2
	VPACKSSWB Y2, Y0, Y0
	VPERMD    Y0, Y13, Y0
	VMOVDQU   Y0, (DI)
	ADDQ      $128, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       qkloop

qkdone:
	VZEROUPPER
	RET
