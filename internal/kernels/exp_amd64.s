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
