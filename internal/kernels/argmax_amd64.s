#include "textflag.h"

// func maxF32AVX512(x *float32, blocks int) (m float32, nan bool)
TEXT ·maxF32AVX512(SB), NOSPLIT, $0-21
	MOVQ    x+0(FP), SI
	MOVQ    blocks+8(FP), CX
	VMOVUPS (SI), Z0
	VMOVUPS Z0, Z1
	VMOVUPS Z0, Z2
	VMOVUPS Z0, Z3
	KXORW   K1, K1, K1

block:
	VMOVUPS  (SI), Z4
	VMOVUPS  64(SI), Z5
	VMOVUPS  128(SI), Z6
	VMOVUPS  192(SI), Z7
	VCMPPS   $3, Z4, Z4, K2 // unordered: NaN
	VCMPPS   $3, Z5, Z5, K3
	KORW     K2, K1, K1
	KORW     K3, K1, K1
	VCMPPS   $3, Z6, Z6, K2
	VCMPPS   $3, Z7, Z7, K3
	KORW     K2, K1, K1
	KORW     K3, K1, K1
	VMAXPS   Z4, Z0, Z0
	VMAXPS   Z5, Z1, Z1
	VMAXPS   Z6, Z2, Z2
	VMAXPS   Z7, Z3, Z3
	ADDQ     $256, SI
	DECQ     CX
	JNZ      block

	VMAXPS        Z1, Z0, Z0
	VMAXPS        Z3, Z2, Z2
	VMAXPS        Z2, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VMOVHLPS      X0, X0, X1
	VMAXPS        X1, X0, X0
	VMOVSHDUP     X0, X1
	VMAXSS        X1, X0, X0
	VMOVSS        X0, m+16(FP)
	KORTESTW      K1, K1
	SETNE         nan+20(FP)
	VZEROUPPER
	RET

// func indexF32AVX512(x *float32, chunks int, v float32) int
TEXT ·indexF32AVX512(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         chunks+8(FP), CX
	VBROADCASTSS v+16(FP), Z0
	XORQ         AX, AX

chunk:
	VCMPPS   $0, (SI), Z0, K1 // equal
	KORTESTW K1, K1
	JNZ      found
	ADDQ     $64, SI
	ADDQ     $16, AX
	DECQ     CX
	JNZ      chunk
	MOVQ     $-1, ret+24(FP)
	VZEROUPPER
	RET

found:
	KMOVW   K1, DX
	TZCNTL  DX, DX
	ADDQ    DX, AX
	MOVQ    AX, ret+24(FP)
	VZEROUPPER
	RET

// func maxF32AVX2(x *float32, blocks int) (m float32, nan bool)
//
// maxF32AVX512 on blocks of 32 floats, in four registers; Y10 gathers
// the lanes where a pair of loads is unordered (a NaN in either).
TEXT ·maxF32AVX2(SB), NOSPLIT, $0-21
	MOVQ    x+0(FP), SI
	MOVQ    blocks+8(FP), CX
	VMOVUPS (SI), Y0
	VMOVUPS Y0, Y1
	VMOVUPS Y0, Y2
	VMOVUPS Y0, Y3
	VXORPS  Y10, Y10, Y10

block2:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VCMPPS  $3, Y5, Y4, Y8
	VCMPPS  $3, Y7, Y6, Y9
	VORPS   Y8, Y10, Y10
	VORPS   Y9, Y10, Y10
	VMAXPS  Y4, Y0, Y0
	VMAXPS  Y5, Y1, Y1
	VMAXPS  Y6, Y2, Y2
	VMAXPS  Y7, Y3, Y3
	ADDQ    $128, SI
	DECQ    CX
	JNZ     block2

	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VMAXSS       X1, X0, X0
	VMOVSS       X0, m+16(FP)
	VPTEST       Y10, Y10
	SETNE        nan+20(FP)
	VZEROUPPER
	RET

// func indexF32AVX2(x *float32, chunks int, v float32) int
//
// indexF32AVX512 with each chunk of 16 in two compares.
TEXT ·indexF32AVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         chunks+8(FP), CX
	VBROADCASTSS v+16(FP), Y0
	XORQ         AX, AX

chunk2:
	VCMPPS $0, (SI), Y0, Y1 // equal
	VCMPPS $0, 32(SI), Y0, Y2
	VORPS  Y1, Y2, Y3
	VPTEST Y3, Y3
	JNZ    found2
	ADDQ   $64, SI
	ADDQ   $16, AX
	DECQ   CX
	JNZ    chunk2
	MOVQ   $-1, ret+24(FP)
	VZEROUPPER
	RET

found2:
	VMOVMSKPS Y1, DX
	VMOVMSKPS Y2, BX
	SHLL      $8, BX
	ORL       BX, DX
	TZCNTL    DX, DX
	ADDQ      DX, AX
	MOVQ      AX, ret+24(FP)
	VZEROUPPER
	RET
