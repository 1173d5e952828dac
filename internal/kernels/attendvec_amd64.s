#include "textflag.h"

// func attnScoresAVX512(scores, q, keys *float32, stride, n, chunks int, scale float32)
TEXT ·attnScoresAVX512(SB), NOSPLIT, $0-52
	MOVQ  scores+0(FP), DI
	MOVQ  q+8(FP), SI
	MOVQ  keys+16(FP), DX
	MOVQ  stride+24(FP), BX
	SHLQ  $2, BX
	MOVQ  n+32(FP), CX
	MOVQ  chunks+40(FP), R8
	MOVSS scale+48(FP), X7

pos:
	VPXORD Z0, Z0, Z0
	MOVQ   R8, R9
	MOVQ   SI, R10
	MOVQ   DX, R11

chunk:
	VMOVUPS     (R10), Z1
	VFMADD231PS (R11), Z1, Z0
	ADDQ        $64, R10
	ADDQ        $64, R11
	DECQ        R9
	JNZ         chunk

	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VADDPS        X1, X0, X0
	VMOVHLPS      X0, X0, X1
	VADDPS        X1, X0, X0
	VMOVSHDUP     X0, X1
	VADDSS        X1, X0, X0
	VMULSS        X7, X0, X0
	VMOVSS        X0, (DI)
	ADDQ          $4, DI
	ADDQ          BX, DX
	DECQ          CX
	JNZ           pos
	VZEROUPPER
	RET

// func attnSumAVX512(out, p, values *float32, stride, n, chunks int)
//
// One 16-wide chunk of out at a time, four positions at a time into four
// accumulators.
TEXT ·attnSumAVX512(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ values+16(FP), DX
	MOVQ stride+24(FP), BX
	SHLQ $2, BX
	MOVQ n+32(FP), R12
	MOVQ chunks+40(FP), R8

chunk:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ   R12, CX
	MOVQ   SI, R10
	MOVQ   DX, R11

four:
	CMPQ         CX, $4
	JLT          one
	VBROADCASTSS (R10), Z4
	VBROADCASTSS 4(R10), Z5
	VBROADCASTSS 8(R10), Z6
	VBROADCASTSS 12(R10), Z7
	VFMADD231PS  (R11), Z4, Z0
	ADDQ         BX, R11
	VFMADD231PS  (R11), Z5, Z1
	ADDQ         BX, R11
	VFMADD231PS  (R11), Z6, Z2
	ADDQ         BX, R11
	VFMADD231PS  (R11), Z7, Z3
	ADDQ         BX, R11
	ADDQ         $16, R10
	SUBQ         $4, CX
	JMP          four

one:
	TESTQ        CX, CX
	JZ           store
	VBROADCASTSS (R10), Z4
	VFMADD231PS  (R11), Z4, Z0
	ADDQ         BX, R11
	ADDQ         $4, R10
	DECQ         CX
	JMP          one

store:
	VADDPS  Z1, Z0, Z0
	VADDPS  Z3, Z2, Z2
	VADDPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, DX
	DECQ    R8
	JNZ     chunk
	VZEROUPPER
	RET
