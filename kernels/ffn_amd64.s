//go:build amd64

#include "textflag.h"

// The polynomial of expf, highest degree first, each coefficient eight times.
DATA expPoly<>+0(SB)/4, $0x39506967
DATA expPoly<>+4(SB)/4, $0x39506967
DATA expPoly<>+8(SB)/4, $0x39506967
DATA expPoly<>+12(SB)/4, $0x39506967
DATA expPoly<>+16(SB)/4, $0x39506967
DATA expPoly<>+20(SB)/4, $0x39506967
DATA expPoly<>+24(SB)/4, $0x39506967
DATA expPoly<>+28(SB)/4, $0x39506967
DATA expPoly<>+32(SB)/4, $0x3ab743ce
DATA expPoly<>+36(SB)/4, $0x3ab743ce
DATA expPoly<>+40(SB)/4, $0x3ab743ce
DATA expPoly<>+44(SB)/4, $0x3ab743ce
DATA expPoly<>+48(SB)/4, $0x3ab743ce
DATA expPoly<>+52(SB)/4, $0x3ab743ce
DATA expPoly<>+56(SB)/4, $0x3ab743ce
DATA expPoly<>+60(SB)/4, $0x3ab743ce
DATA expPoly<>+64(SB)/4, $0x3c088908
DATA expPoly<>+68(SB)/4, $0x3c088908
DATA expPoly<>+72(SB)/4, $0x3c088908
DATA expPoly<>+76(SB)/4, $0x3c088908
DATA expPoly<>+80(SB)/4, $0x3c088908
DATA expPoly<>+84(SB)/4, $0x3c088908
DATA expPoly<>+88(SB)/4, $0x3c088908
DATA expPoly<>+92(SB)/4, $0x3c088908
DATA expPoly<>+96(SB)/4, $0x3d2aa9c1
DATA expPoly<>+100(SB)/4, $0x3d2aa9c1
DATA expPoly<>+104(SB)/4, $0x3d2aa9c1
DATA expPoly<>+108(SB)/4, $0x3d2aa9c1
DATA expPoly<>+112(SB)/4, $0x3d2aa9c1
DATA expPoly<>+116(SB)/4, $0x3d2aa9c1
DATA expPoly<>+120(SB)/4, $0x3d2aa9c1
DATA expPoly<>+124(SB)/4, $0x3d2aa9c1
DATA expPoly<>+128(SB)/4, $0x3e2aaaaa
DATA expPoly<>+132(SB)/4, $0x3e2aaaaa
DATA expPoly<>+136(SB)/4, $0x3e2aaaaa
DATA expPoly<>+140(SB)/4, $0x3e2aaaaa
DATA expPoly<>+144(SB)/4, $0x3e2aaaaa
DATA expPoly<>+148(SB)/4, $0x3e2aaaaa
DATA expPoly<>+152(SB)/4, $0x3e2aaaaa
DATA expPoly<>+156(SB)/4, $0x3e2aaaaa
DATA expPoly<>+160(SB)/4, $0x3f000000
DATA expPoly<>+164(SB)/4, $0x3f000000
DATA expPoly<>+168(SB)/4, $0x3f000000
DATA expPoly<>+172(SB)/4, $0x3f000000
DATA expPoly<>+176(SB)/4, $0x3f000000
DATA expPoly<>+180(SB)/4, $0x3f000000
DATA expPoly<>+184(SB)/4, $0x3f000000
DATA expPoly<>+188(SB)/4, $0x3f000000
GLOBL expPoly<>(SB), RODATA|NOPTR, $192

#define BCAST(v, Y) \
	MOVL         $v, AX; \
	VMOVD        AX, X0; \
	VBROADCASTSS X0, Y

// func siluMulAVX2(dst, gate, up *float32, n int)
// dst[i] = gate[i]/(1+e^−gate[i]) · up[i] for i < n (a multiple of 8): SwiGLU, with
// the exponential of expf (the same reduction and polynomial).
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	BCAST(0xc2aea8a0, Y15) // −87.33: below it e^x is no longer normal
	BCAST(0x42b0c0a5, Y14) // 88.38: above it e^x overflows
	BCAST(0x3fb8aa3b, Y13) // log2(e)
	BCAST(0x3f318000, Y12) // ln2, high part
	BCAST(0xb95e8083, Y11) // ln2, low part
	BCAST(0x3f800000, Y10) // 1
	SHRQ $3, CX
	JZ   sdone

sloop:
	VMOVUPS      (SI), Y0
	VXORPS       Y1, Y1, Y1
	VSUBPS       Y0, Y1, Y1 // x = −g, clamped
	VMAXPS       Y15, Y1, Y1
	VMINPS       Y14, Y1, Y1
	VMULPS       Y13, Y1, Y2
	VROUNDPS     $0, Y2, Y2 // k
	VFNMADD231PS Y12, Y2, Y1
	VFNMADD231PS Y11, Y2, Y1 // r = x − k·ln2
	VMOVUPS      expPoly<>+0(SB), Y3
	VFMADD213PS  expPoly<>+32(SB), Y1, Y3
	VFMADD213PS  expPoly<>+64(SB), Y1, Y3
	VFMADD213PS  expPoly<>+96(SB), Y1, Y3
	VFMADD213PS  expPoly<>+128(SB), Y1, Y3
	VFMADD213PS  expPoly<>+160(SB), Y1, Y3
	VMULPS       Y1, Y1, Y4
	VFMADD213PS  Y1, Y4, Y3 // p·r² + r
	VADDPS       Y10, Y3, Y3
	VCVTPS2DQ    Y2, Y2
	VPSLLD       $23, Y2, Y2
	VPADDD       Y10, Y2, Y2 // 2^k
	VMULPS       Y2, Y3, Y3 // e^−g
	VADDPS       Y10, Y3, Y3
	VDIVPS       Y3, Y0, Y0 // g/(1+e^−g)
	VMULPS       (DX), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	DECQ         CX
	JNZ          sloop

sdone:
	VZEROUPPER
	RET
