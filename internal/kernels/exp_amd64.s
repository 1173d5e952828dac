#include "textflag.h"

// func expBlocksAVX512(dst, x *float32, n int, m float32) float64
TEXT ·expBlocksAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS m+24(FP), Z16
	MOVL $0xc2ae0000, AX // −87
	VPBROADCASTD AX, Z17
	MOVL $0x3fb8aa3b, AX // log2(e)
	VPBROADCASTD AX, Z18
	MOVL $0xbf317200, AX // −ln2Hi
	VPBROADCASTD AX, Z19
	MOVL $0xb5bfbe8e, AX // −ln2Lo
	VPBROADCASTD AX, Z20
	MOVL $0x3f800000, AX // 1
	VPBROADCASTD AX, Z21
	MOVL $0x3f000000, AX // ½
	VPBROADCASTD AX, Z22
	MOVL $0x3e2aa9fb, AX // c3
	VPBROADCASTD AX, Z23
	MOVL $0x3d2aaa53, AX // c4
	VPBROADCASTD AX, Z24
	MOVL $0x3c093b5b, AX // c5
	VPBROADCASTD AX, Z25
	MOVL $0x3ab6be20, AX // c6
	VPBROADCASTD AX, Z26
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9

loop:
	CMPQ CX, $16
	JLT  done
	VMOVUPS (SI), Z0
	VSUBPS  Z16, Z0, Z0           // y = x − m
	VMAXPS  Z17, Z0, Z0           // y = max(y, −87)
	VMULPS  Z18, Z0, Z1
	VRNDSCALEPS $0, Z1, Z1        // k = round(y·log2e), ties to even
	VFMADD231PS Z19, Z1, Z0       // r = y − k·ln2Hi
	VFMADD231PS Z20, Z1, Z0       // r −= k·ln2Lo
	VMULPS  Z0, Z0, Z2            // r²
	VMOVAPS Z24, Z3
	VFMADD231PS Z0, Z25, Z3       // c4 + c5·r
	VFMADD231PS Z2, Z26, Z3       // inner = (c4 + c5·r) + r²·c6
	VMOVAPS Z22, Z4
	VFMADD231PS Z0, Z23, Z4       // ½ + c3·r
	VFMADD231PS Z3, Z2, Z4        // mid = (½ + c3·r) + r²·inner
	VADDPS  Z21, Z0, Z5           // 1 + r
	VFMADD231PS Z4, Z2, Z5        // p = (1 + r) + r²·mid
	VSCALEFPS Z1, Z5, Z5          // e = p·2^k
	VMOVUPS Z5, (DI)
	VCVTPS2PD Y5, Z6
	VEXTRACTF32X8 $1, Z5, Y7
	VCVTPS2PD Y7, Z7
	VADDPD  Z6, Z8, Z8
	VADDPD  Z7, Z9, Z9
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop

done:
	VADDPD Z9, Z8, Z8
	VEXTRACTF64X4 $1, Z8, Y1
	VADDPD Y1, Y8, Y8
	VEXTRACTF128 $1, Y8, X1
	VADDPD X1, X8, X8
	VPERMILPD $1, X8, X1
	VADDSD X1, X8, X8
	VZEROUPPER
	MOVSD X8, ret+32(FP)
	RET

// func maxBlocksAVX512(x *float32, n int) float32
TEXT ·maxBlocksAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Z0
	VMOVAPS Z0, Z1
	ADDQ $64, SI
	SUBQ $16, CX

maxloop:
	CMPQ CX, $32
	JLT  maxtail
	VMAXPS (SI), Z0, Z0
	VMAXPS 64(SI), Z1, Z1
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  maxloop

maxtail:
	CMPQ CX, $16
	JLT  maxdone
	VMAXPS (SI), Z0, Z0

maxdone:
	VMAXPS Z1, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func scaleBlocksAVX512(x *float32, n int, k float32)
TEXT ·scaleBlocksAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS k+16(FP), Z2

scaleloop:
	CMPQ CX, $16
	JLT  scaledone
	VMULPS (SI), Z2, Z0
	VMOVUPS Z0, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	JMP  scaleloop

scaledone:
	VZEROUPPER
	RET

// The constants of the AVX2 exponential, broadcast at entry (the AVX-512
// form's values, in expNear0's order).
DATA expConsts<>+0(SB)/4, $0xc2ae0000  // −87
DATA expConsts<>+4(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expConsts<>+8(SB)/4, $0xbf317200  // −ln2Hi
DATA expConsts<>+12(SB)/4, $0xb5bfbe8e // −ln2Lo
DATA expConsts<>+16(SB)/4, $0x3f800000 // 1
DATA expConsts<>+20(SB)/4, $0x3f000000 // ½
DATA expConsts<>+24(SB)/4, $0x3e2aa9fb // c3
DATA expConsts<>+28(SB)/4, $0x3d2aaa53 // c4
DATA expConsts<>+32(SB)/4, $0x3c093b5b // c5
DATA expConsts<>+36(SB)/4, $0x3ab6be20 // c6
GLOBL expConsts<>(SB), RODATA|NOPTR, $40

// laneMasks<>+4·(16−r) masks an 8-lane group's first r lanes and
// laneMasks<>+4·r its last r lanes.
DATA laneMasks<>+0(SB)/8, $0
DATA laneMasks<>+8(SB)/8, $0
DATA laneMasks<>+16(SB)/8, $0
DATA laneMasks<>+24(SB)/8, $0
DATA laneMasks<>+32(SB)/8, $-1
DATA laneMasks<>+40(SB)/8, $-1
DATA laneMasks<>+48(SB)/8, $-1
DATA laneMasks<>+56(SB)/8, $-1
DATA laneMasks<>+64(SB)/8, $0
DATA laneMasks<>+72(SB)/8, $0
DATA laneMasks<>+80(SB)/8, $0
DATA laneMasks<>+88(SB)/8, $0
GLOBL laneMasks<>(SB), RODATA|NOPTR, $96

// EXP8 sets Y5 to e^(Y0 − m) by the AVX-512 form's steps, whose bits it
// gives: y = max(x − m, −87); k = round(y·log2e), ties to even;
// r = (y − k·ln2Hi) − k·ln2Lo; inner = (c4 + c5·r) + r²·c6;
// mid = (½ + c3·r) + r²·inner; p = (1 + r) + r²·mid, each step one fused
// multiply-add; then p·2^k, with 2^k made by adding k<<23 to the bits of 1
// (exact, as VSCALEFPS's scaling is; 127+k ≥ 1 since y ≥ −87). Registers:
// Y15 m, Y14 −87, Y13 log2e, Y12 −ln2Hi, Y11 −ln2Lo, Y10 1, Y9 c6, Y7 ½,
// Y6 c4; c3 and c5 are broadcast from memory. It clobbers Y0–Y4.
#define EXP8 \
	VSUBPS       Y15, Y0, Y0 \
	VMAXPS       Y14, Y0, Y0 \
	VMULPS       Y13, Y0, Y1 \
	VROUNDPS     $0, Y1, Y1  \
	VFMADD231PS  Y12, Y1, Y0 \
	VFMADD231PS  Y11, Y1, Y0 \
	VMULPS       Y0, Y0, Y2  \
	VBROADCASTSS expConsts<>+32(SB), Y3 \
	VFMADD213PS  Y6, Y0, Y3  \
	VFMADD231PS  Y9, Y2, Y3  \
	VBROADCASTSS expConsts<>+24(SB), Y4 \
	VFMADD213PS  Y7, Y0, Y4  \
	VFMADD231PS  Y3, Y2, Y4  \
	VADDPS       Y10, Y0, Y5 \
	VFMADD231PS  Y4, Y2, Y5  \
	VCVTPS2DQ    Y1, Y1      \
	VPSLLD       $23, Y1, Y1 \
	VPADDD       Y10, Y1, Y1 \
	VMULPS       Y1, Y5, Y5

// SUM8 adds the eight lanes of Y5, in float64, to the four of Y8 (Y1 and
// Y3 scratch).
#define SUM8 \
	VCVTPS2PD    X5, Y1      \
	VEXTRACTF128 $1, Y5, X3  \
	VCVTPS2PD    X3, Y3      \
	VADDPD       Y3, Y1, Y1  \
	VADDPD       Y1, Y8, Y8

// func expBlocksAVX2(dst, x *float32, n int, m float32) float64
//
// n > 0 elements, 8 at a time. For n ≥ 8 the last n mod 8 are done as the
// last 8, loaded before anything is stored (dst may be x) and summed only
// in their last n mod 8 lanes; for n < 8, masked loads and stores (lanes
// past n are neither stored nor summed). AVX2's masked stores are slow on
// some CPUs (tens of cycles on AMD's), so the longer rows avoid them.
TEXT ·expBlocksAVX2(SB), NOSPLIT, $32-40
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VBROADCASTSS expConsts<>+0(SB), Y14
	VBROADCASTSS expConsts<>+4(SB), Y13
	VBROADCASTSS expConsts<>+8(SB), Y12
	VBROADCASTSS expConsts<>+12(SB), Y11
	VBROADCASTSS expConsts<>+16(SB), Y10
	VBROADCASTSS expConsts<>+20(SB), Y7
	VBROADCASTSS expConsts<>+28(SB), Y6
	VBROADCASTSS expConsts<>+36(SB), Y9
	VXORPD       Y8, Y8, Y8
	CMPQ         CX, $8
	JLT          exp2short
	VMOVUPS      -32(SI)(CX*4), Y0
	VMOVUPS      Y0, last-32(SP)
	LEAQ         -32(DI)(CX*4), R11

exp2loop:
	CMPQ    CX, $8
	JLT     exp2last
	VMOVUPS (SI), Y0
	EXP8
	VMOVUPS Y5, (DI)
	SUM8
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     exp2loop

exp2last:
	TESTQ   CX, CX
	JZ      exp2done
	VMOVUPS last-32(SP), Y0
	EXP8
	VMOVUPS Y5, (R11)
	LEAQ    laneMasks<>(SB), R9
	VANDPS  (R9)(CX*4), Y5, Y5
	SUM8
	JMP     exp2done

exp2short:
	LEAQ       laneMasks<>+64(SB), R9
	SHLQ       $2, CX
	SUBQ       CX, R9
	VMOVUPS    (R9), Y1
	VMASKMOVPS (SI), Y1, Y0
	EXP8
	VMOVUPS    (R9), Y1
	VMASKMOVPS Y5, Y1, (DI)
	VANDPS     Y1, Y5, Y5
	SUM8

exp2done:
	VEXTRACTF128 $1, Y8, X1
	VADDPD       X1, X8, X8
	VPERMILPD    $1, X8, X1
	VADDSD       X1, X8, X8
	VZEROUPPER
	MOVSD        X8, ret+32(FP)
	RET

// func maxBlocksAVX2(x *float32, n int) float32
//
// n ≥ 8: 32 elements a step in four registers, then 8, the last group of
// 8 read overlapping (a maximum does not mind elements seen twice).
TEXT ·maxBlocksAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS -32(SI)(CX*4), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3

max2loop:
	CMPQ   CX, $32
	JLT    max2eight
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	VMAXPS 64(SI), Y2, Y2
	VMAXPS 96(SI), Y3, Y3
	ADDQ   $128, SI
	SUBQ   $32, CX
	JMP    max2loop

max2eight:
	CMPQ   CX, $8
	JLT    max2done
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX
	JMP    max2eight

max2done:
	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+16(FP)
	RET

// func scaleBlocksAVX2(x *float32, n int, k float32)
//
// n ≥ 8 elements, 16 then 8 at a time; the last n mod 8 as the last 8,
// loaded before anything is stored.
TEXT ·scaleBlocksAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS k+16(FP), Y2
	LEAQ         -32(SI)(CX*4), R9
	VMOVUPS      (R9), Y3

scale2loop:
	CMPQ    CX, $16
	JLT     scale2eight
	VMULPS  (SI), Y2, Y0
	VMULPS  32(SI), Y2, Y1
	VMOVUPS Y0, (SI)
	VMOVUPS Y1, 32(SI)
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     scale2loop

scale2eight:
	CMPQ    CX, $8
	JLT     scale2last
	VMULPS  (SI), Y2, Y0
	VMOVUPS Y0, (SI)
	SUBQ    $8, CX

scale2last:
	TESTQ   CX, CX
	JZ      scale2done
	VMULPS  Y2, Y3, Y3
	VMOVUPS Y3, (R9)

scale2done:
	VZEROUPPER
	RET
