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
