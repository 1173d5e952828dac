#include "textflag.h"
#include "hsum_amd64.h"

// The score kernels follow dot16 (16 lanes, no FMA, folded in halves); the
// value kernels add w[t]·v_t in the order of t, each product rounded, as
// axpyF32 does. So both give the bits of the Go code.

// func attendScoresAVX512(scores *float32, n int, q *float32, hd int, keys *float32, stride int, scale float32)
TEXT ·attendScoresAVX512(SB), NOSPLIT, $0-52
	MOVQ         scores+0(FP), DI
	MOVQ         n+8(FP), CX
	MOVQ         q+16(FP), DX
	MOVQ         hd+24(FP), BX
	SHLQ         $2, BX
	MOVQ         keys+32(FP), SI
	MOVQ         stride+40(FP), R8
	VMOVSS       scale+48(FP), X7

key512:
	VXORPS Z0, Z0, Z0
	XORQ   AX, AX

chunk512:
	VMOVUPS (DX)(AX*1), Z1
	VMULPS  (SI)(AX*1), Z1, Z1
	VADDPS  Z1, Z0, Z0
	ADDQ    $64, AX
	CMPQ    AX, BX
	JLT     chunk512
	HSUM16
	VMULSS        X7, X0, X0
	VMOVSS        X0, (DI)
	ADDQ          $4, DI
	ADDQ          R8, SI
	DECQ          CX
	JNZ           key512
	VZEROUPPER
	RET

// func attendScoresAVX2(scores *float32, n int, q *float32, hd int, keys *float32, stride int, scale float32)
// Lanes 0–7 in Y0, 8–15 in Y2.
TEXT ·attendScoresAVX2(SB), NOSPLIT, $0-52
	MOVQ   scores+0(FP), DI
	MOVQ   n+8(FP), CX
	MOVQ   q+16(FP), DX
	MOVQ   hd+24(FP), BX
	SHLQ   $2, BX
	MOVQ   keys+32(FP), SI
	MOVQ   stride+40(FP), R8
	VMOVSS scale+48(FP), X7

key2:
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	XORQ   AX, AX

chunk2:
	VMOVUPS (DX)(AX*1), Y1
	VMULPS  (SI)(AX*1), Y1, Y1
	VADDPS  Y1, Y0, Y0
	VMOVUPS 32(DX)(AX*1), Y3
	VMULPS  32(SI)(AX*1), Y3, Y3
	VADDPS  Y3, Y2, Y2
	ADDQ    $64, AX
	CMPQ    AX, BX
	JLT     chunk2
	VADDPS       Y2, Y0, Y0
	HSUM8
	VMULSS       X7, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	ADDQ         R8, SI
	DECQ         CX
	JNZ          key2
	VZEROUPPER
	RET

// func attendValuesAVX512(out *float32, hd int, w *float32, n int, values *float32, stride int)
// 16 elements of out per pass over the values (the sums stay in Z0).
TEXT ·attendValuesAVX512(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ hd+8(FP), BX
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ values+32(FP), SI
	MOVQ stride+40(FP), R8

col512:
	VXORPS Z0, Z0, Z0
	MOVQ   SI, R9
	XORQ   AX, AX

val512:
	VBROADCASTSS (DX)(AX*4), Z1
	VMULPS       (R9), Z1, Z1
	VADDPS       Z1, Z0, Z0
	ADDQ         R8, R9
	INCQ         AX
	CMPQ         AX, CX
	JLT          val512
	VMOVUPS      Z0, (DI)
	ADDQ         $64, DI
	ADDQ         $64, SI
	SUBQ         $16, BX
	JNZ          col512
	VZEROUPPER
	RET

// func attendValuesAVX2(out *float32, hd int, w *float32, n int, values *float32, stride int)
TEXT ·attendValuesAVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ hd+8(FP), BX
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ values+32(FP), SI
	MOVQ stride+40(FP), R8

col2:
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	MOVQ   SI, R9
	XORQ   AX, AX

val2:
	VBROADCASTSS (DX)(AX*4), Y1
	VMULPS       (R9), Y1, Y3
	VADDPS       Y3, Y0, Y0
	VMULPS       32(R9), Y1, Y3
	VADDPS       Y3, Y2, Y2
	ADDQ         R8, R9
	INCQ         AX
	CMPQ         AX, CX
	JLT          val2
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y2, 32(DI)
	ADDQ         $64, DI
	ADDQ         $64, SI
	SUBQ         $16, BX
	JNZ          col2
	VZEROUPPER
	RET
