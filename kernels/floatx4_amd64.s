//go:build amd64

#include "textflag.h"

// Float matrix-vector kernels: four weight rows, stride bytes apart, against one
// float32 activation row of n values (a multiple of 8); sums to out[0],
// out[ostride], out[2·ostride], out[3·ostride]. Like the quantized kernels, the
// rows are far apart so that a core streams four regions of memory at once.

#define PFF 1024

#define LOADF32(OFF, R, Y) VMOVUPS OFF(R), Y
#define LOADF16(OFF, R, Y) VCVTPH2PS OFF(R), Y
#define LOADBF16(OFF, R, Y) \
	VPMOVZXWD OFF(R), Y; \
	VPSLLD    $16, Y, Y

#define FX4SETUP \
	MOVQ   w+0(FP), SI; \
	MOVQ   stride+8(FP), BX; \
	MOVQ   n+16(FP), CX; \
	MOVQ   x+24(FP), DI; \
	LEAQ   (SI)(BX*1), R8; \
	LEAQ   (R8)(BX*1), R9; \
	LEAQ   (R9)(BX*1), R10; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	SHRQ   $3, CX

#define FX4STEP(LOAD, STEP) \
	PREFETCHT0  PFF(SI); \
	PREFETCHT0  PFF(R8); \
	PREFETCHT0  PFF(R9); \
	PREFETCHT0  PFF(R10); \
	VMOVUPS     (DI), Y15; \
	LOAD(0, SI, Y4); \
	LOAD(0, R8, Y5); \
	LOAD(0, R9, Y6); \
	LOAD(0, R10, Y7); \
	VFMADD231PS Y4, Y15, Y0; \
	VFMADD231PS Y5, Y15, Y1; \
	VFMADD231PS Y6, Y15, Y2; \
	VFMADD231PS Y7, Y15, Y3; \
	ADDQ        $STEP, SI; \
	ADDQ        $STEP, R8; \
	ADDQ        $STEP, R9; \
	ADDQ        $STEP, R10; \
	ADDQ        $32, DI

#define FX4STORE \
	VEXTRACTF128 $1, Y0, X4; \
	VADDPS       X4, X0, X0; \
	VEXTRACTF128 $1, Y1, X4; \
	VADDPS       X4, X1, X1; \
	VEXTRACTF128 $1, Y2, X4; \
	VADDPS       X4, X2, X2; \
	VEXTRACTF128 $1, Y3, X4; \
	VADDPS       X4, X3, X3; \
	VHADDPS      X1, X0, X0; \
	VHADDPS      X3, X2, X2; \
	VHADDPS      X2, X0, X0; \
	MOVQ         out+32(FP), AX; \
	MOVQ         ostride+40(FP), BX; \
	SHLQ         $2, BX; \
	VMOVSS       X0, (AX); \
	ADDQ         BX, AX; \
	VEXTRACTPS   $1, X0, (AX); \
	ADDQ         BX, AX; \
	VEXTRACTPS   $2, X0, (AX); \
	ADDQ         BX, AX; \
	VEXTRACTPS   $3, X0, (AX); \
	VZEROUPPER

// func f32DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)
TEXT ·f32DotX4AVX2(SB), NOSPLIT, $0-48
	FX4SETUP
	JZ f32x4done

f32x4loop:
	FX4STEP(LOADF32, 32)
	DECQ CX
	JNZ  f32x4loop

f32x4done:
	FX4STORE
	RET

// func f16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)
TEXT ·f16DotX4AVX2(SB), NOSPLIT, $0-48
	FX4SETUP
	JZ f16x4done

f16x4loop:
	FX4STEP(LOADF16, 16)
	DECQ CX
	JNZ  f16x4loop

f16x4done:
	FX4STORE
	RET

// func bf16DotX4AVX2(w *byte, stride, n int, x *float32, out *float32, ostride int)
TEXT ·bf16DotX4AVX2(SB), NOSPLIT, $0-48
	FX4SETUP
	JZ bf16x4done

bf16x4loop:
	FX4STEP(LOADBF16, 16)
	DECQ CX
	JNZ  bf16x4loop

bf16x4done:
	FX4STORE
	RET

