#include "textflag.h"

// func swigluFinishAVX512(dst, gate, up, e *float32, n int)
//
// Per 16 lanes: num = e where gate is negative (its sign bit as the mask,
// VPMOVD2M), else 1; dst = gate·(num/(1+e))·up, in swigluFinishGo's order
// (IEEE division and products: the same bits). dst may be gate or up: each
// group is read before it is written.
TEXT ·swigluFinishAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ e+24(FP), R8
	MOVQ n+32(FP), CX
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z31

loop:
	VMOVUPS   (SI), Z0
	VMOVUPS   (R8), Z1
	VADDPS    Z31, Z1, Z2
	VPMOVD2M  Z0, K1
	VMOVAPS   Z31, Z3
	VMOVAPS   Z1, K1, Z3
	VDIVPS    Z2, Z3, Z3
	VMULPS    Z3, Z0, Z3
	VMULPS    (DX), Z3, Z3
	VMOVUPS   Z3, (DI)
	ADDQ      $64, SI
	ADDQ      $64, R8
	ADDQ      $64, DX
	ADDQ      $64, DI
	SUBQ      $16, CX
	JNZ       loop
	VZEROUPPER
	RET

// func negAbsAVX512(dst, x *float32, n int)
//
// dst = −|x| for n elements, a multiple of 16: the sign bit set.
TEXT ·negAbsAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z31

nloop:
	VPORD   (SI), Z31, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     nloop
	VZEROUPPER
	RET

// func swigluFinishAVX2(dst, gate, up, e *float32, n int)
//
// swigluFinishAVX512 8 lanes at a time: VBLENDVPS picks e where gate's
// sign bit is set, else 1.
TEXT ·swigluFinishAVX2(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         gate+8(FP), SI
	MOVQ         up+16(FP), DX
	MOVQ         e+24(FP), R8
	MOVQ         n+32(FP), CX
	MOVL         $0x3f800000, AX
	MOVL         AX, X15
	VBROADCASTSS X15, Y15

loop2:
	VMOVUPS   (SI), Y0
	VMOVUPS   (R8), Y1
	VADDPS    Y15, Y1, Y2
	VBLENDVPS Y0, Y1, Y15, Y3
	VDIVPS    Y2, Y3, Y3
	VMULPS    Y3, Y0, Y3
	VMULPS    (DX), Y3, Y3
	VMOVUPS   Y3, (DI)
	ADDQ      $32, SI
	ADDQ      $32, R8
	ADDQ      $32, DX
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       loop2
	VZEROUPPER
	RET

// func negAbsAVX2(dst, x *float32, n int)
//
// dst = −|x| for n elements, a multiple of 8: the sign bit set.
TEXT ·negAbsAVX2(SB), NOSPLIT, $0-24
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVL         $0x80000000, AX
	MOVL         AX, X15
	VBROADCASTSS X15, Y15

nloop2:
	VORPS   (SI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     nloop2
	VZEROUPPER
	RET
