#include "textflag.h"
#include "hsum_amd64.h"

// Both kernels follow int8DotGeneric: 16 lanes, accumulator A for even
// blocks and B for odd ones; per block t[j] = q[j]·x[j] + q[j+16]·x[j+16],
// acc += scale·t; then A+B and the lanes folded in halves. No FMA, so the
// bits equal the Go code's.

// func int8RowsAVX512(y *float32, codes *int8, scales *float32, x *float32, rows, blocks int)
TEXT ·int8RowsAVX512(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ scales+16(FP), R8
	MOVQ x+24(FP), DX
	MOVQ rows+32(FP), CX
	MOVQ blocks+40(FP), BX

row512:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ   DX, R9
	MOVQ   BX, R10

pair512:
	CMPQ         R10, $2
	JLT          single512
	VPMOVSXBD    (SI), Z2
	VPMOVSXBD    16(SI), Z3
	VPMOVSXBD    32(SI), Z4
	VPMOVSXBD    48(SI), Z5
	VCVTDQ2PS    Z2, Z2
	VCVTDQ2PS    Z3, Z3
	VCVTDQ2PS    Z4, Z4
	VCVTDQ2PS    Z5, Z5
	VMULPS       (R9), Z2, Z2
	VMULPS       64(R9), Z3, Z3
	VMULPS       128(R9), Z4, Z4
	VMULPS       192(R9), Z5, Z5
	VADDPS       Z3, Z2, Z2
	VADDPS       Z5, Z4, Z4
	VBROADCASTSS (R8), Z6
	VBROADCASTSS 4(R8), Z7
	VMULPS       Z6, Z2, Z2
	VMULPS       Z7, Z4, Z4
	VADDPS       Z2, Z0, Z0
	VADDPS       Z4, Z1, Z1
	ADDQ         $64, SI
	ADDQ         $256, R9
	ADDQ         $8, R8
	SUBQ         $2, R10
	JMP          pair512

single512:
	TESTQ        R10, R10
	JZ           fold512
	VPMOVSXBD    (SI), Z2
	VPMOVSXBD    16(SI), Z3
	VCVTDQ2PS    Z2, Z2
	VCVTDQ2PS    Z3, Z3
	VMULPS       (R9), Z2, Z2
	VMULPS       64(R9), Z3, Z3
	VADDPS       Z3, Z2, Z2
	VBROADCASTSS (R8), Z6
	VMULPS       Z6, Z2, Z2
	VADDPS       Z2, Z0, Z0
	ADDQ         $32, SI
	ADDQ         $4, R8

fold512:
	VADDPS        Z1, Z0, Z0
	HSUM16
	VMOVSS        X0, (DI)
	ADDQ          $4, DI
	DECQ          CX
	JNZ           row512
	VZEROUPPER
	RET

// BLOCK2(c, xo, so, lo, hi) adds one block of int8RowsAVX2's row to lanes
// 0–7 (lo) and 8–15 (hi) of an accumulator: the block's 32 codes at
// c(SI), times x at xo(R9), the pairs j, j+16 added, times its scale at
// so(R8). Clobbers Y4–Y8.
#define BLOCK2(c, xo, so, lo, hi) \
	VPMOVSXBD    c(SI), Y4        \
	VPMOVSXBD    c+8(SI), Y5      \
	VPMOVSXBD    c+16(SI), Y6     \
	VPMOVSXBD    c+24(SI), Y7     \
	VCVTDQ2PS    Y4, Y4           \
	VCVTDQ2PS    Y5, Y5           \
	VCVTDQ2PS    Y6, Y6           \
	VCVTDQ2PS    Y7, Y7           \
	VMULPS       xo(R9), Y4, Y4    \
	VMULPS       xo+32(R9), Y5, Y5 \
	VMULPS       xo+64(R9), Y6, Y6 \
	VMULPS       xo+96(R9), Y7, Y7 \
	VADDPS       Y6, Y4, Y4       \
	VADDPS       Y7, Y5, Y5       \
	VBROADCASTSS so(R8), Y8       \
	VMULPS       Y8, Y4, Y4       \
	VMULPS       Y8, Y5, Y5       \
	VADDPS       Y4, lo, lo       \
	VADDPS       Y5, hi, hi

// func int8RowsAVX2(y *float32, codes *int8, scales *float32, x *float32, rows, blocks int)
// Lanes 0–7 of A in Y0, 8–15 in Y1; of B in Y2 and Y3.
TEXT ·int8RowsAVX2(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ scales+16(FP), R8
	MOVQ x+24(FP), DX
	MOVQ rows+32(FP), CX
	MOVQ blocks+40(FP), BX

row2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   DX, R9
	MOVQ   BX, R10

pair2:
	CMPQ         R10, $2
	JLT          single2
	BLOCK2(0, 0, 0, Y0, Y1)
	BLOCK2(32, 128, 4, Y2, Y3)
	ADDQ         $64, SI
	ADDQ         $256, R9
	ADDQ         $8, R8
	SUBQ         $2, R10
	JMP          pair2

single2:
	TESTQ        R10, R10
	JZ           fold2
	BLOCK2(0, 0, 0, Y0, Y1)
	ADDQ         $32, SI
	ADDQ         $4, R8

fold2:
	VADDPS       Y2, Y0, Y0
	VADDPS       Y3, Y1, Y1
	VADDPS       Y1, Y0, Y0
	HSUM8
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	DECQ         CX
	JNZ          row2
	VZEROUPPER
	RET
