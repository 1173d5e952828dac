#include "textflag.h"

// func dequantQ8_0AVX512(dst *float32, row *byte, blocks int)
//
// A block is 34 bytes: the fp16 scale d, then 32 int8 codes; it becomes
// 32 float32 values q·d.
TEXT ·dequantQ8_0AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ row+8(FP), SI
	MOVQ blocks+16(FP), CX

loop:
	MOVWLZX      (SI), AX
	VMOVD        AX, X0
	VCVTPH2PS    X0, X0
	VBROADCASTSS X0, Z0
	VPMOVSXBD    2(SI), Z1
	VPMOVSXBD    18(SI), Z2
	VCVTDQ2PS    Z1, Z1
	VCVTDQ2PS    Z2, Z2
	VMULPS       Z0, Z1, Z1
	VMULPS       Z0, Z2, Z2
	VMOVUPS      Z1, (DI)
	VMOVUPS      Z2, 64(DI)
	ADDQ         $34, SI
	ADDQ         $128, DI
	DECQ         CX
	JNZ          loop
	VZEROUPPER
	RET

// The fused row·x kernels below: for each of rows rows of W (rowBytes
// apart) the dot product of its blocks with x, into y[0:rows], in the Go
// code's order (order.go): every product rounded by a VMULPS, every sum by
// a VADDPS. Y0 holds the 8 lanes of a row, Y1 a block's partial sums, Y5
// the block's scale in every lane.

// SUM8 folds the 8 lanes of Y0 into X0's low lane as sum8 does (clobbers
// X1).
#define SUM8 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1     \
	VADDSS       X1, X0, X0

// func dotQ8_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is the fp16 scale d, then 32 int8 codes: VPMOVSXBD widens 8
// codes at a time, lane k taking codes k, k+8, k+16, k+24.
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-48
	MOVQ y+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ rows+16(FP), R8
	MOVQ rowBytes+24(FP), R9
	MOVQ x+32(FP), DX
	MOVQ blocks+40(FP), R10

q8row:
	MOVQ   SI, AX
	MOVQ   DX, BX
	MOVQ   R10, CX
	VXORPS Y0, Y0, Y0

q8block:
	VPMOVSXBD    2(AX), Y1
	VPMOVSXBD    10(AX), Y2
	VPMOVSXBD    18(AX), Y3
	VPMOVSXBD    26(AX), Y4
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VCVTDQ2PS    Y4, Y4
	VMULPS       (BX), Y1, Y1
	VMULPS       32(BX), Y2, Y2
	VMULPS       64(BX), Y3, Y3
	VMULPS       96(BX), Y4, Y4
	VADDPS       Y2, Y1, Y1
	VADDPS       Y3, Y1, Y1
	VADDPS       Y4, Y1, Y1
	VPBROADCASTW (AX), X5
	VCVTPH2PS    X5, Y5
	VMULPS       Y5, Y1, Y1
	VADDPS       Y1, Y0, Y0
	ADDQ         $34, AX
	ADDQ         $128, BX
	DECQ         CX
	JNZ          q8block

	SUM8
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	ADDQ   R9, SI
	DECQ   R8
	JNZ    q8row
	VZEROUPPER
	RET

DATA nibbleMask<>+0(SB)/4, $0x0f
GLOBL nibbleMask<>(SB), RODATA|NOPTR, $4

DATA eight<>+0(SB)/4, $8
GLOBL eight<>(SB), RODATA|NOPTR, $4

// func dotQ4_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is the fp16 scale d, then 16 bytes: byte j holds code j in its
// low nibble and code j+16 in its high one. VPMOVZXBD widens bytes 0-7
// and 8-15, giving lane k the codes k, k+16 and k+8, k+24.
TEXT ·dotQ4_0AVX2(SB), NOSPLIT, $0-48
	MOVQ         y+0(FP), DI
	MOVQ         w+8(FP), SI
	MOVQ         rows+16(FP), R8
	MOVQ         rowBytes+24(FP), R9
	MOVQ         x+32(FP), DX
	MOVQ         blocks+40(FP), R10
	VPBROADCASTD nibbleMask<>(SB), Y15
	VPBROADCASTD eight<>(SB), Y14

q4row:
	MOVQ   SI, AX
	MOVQ   DX, BX
	MOVQ   R10, CX
	VXORPS Y0, Y0, Y0

q4block:
	VPMOVZXBD    2(AX), Y1
	VPMOVZXBD    10(AX), Y2
	VPSRLD       $4, Y1, Y3
	VPSRLD       $4, Y2, Y4
	VPAND        Y15, Y1, Y1
	VPAND        Y15, Y2, Y2
	VPSUBD       Y14, Y1, Y1
	VPSUBD       Y14, Y2, Y2
	VPSUBD       Y14, Y3, Y3
	VPSUBD       Y14, Y4, Y4
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VCVTDQ2PS    Y4, Y4
	VMULPS       (BX), Y1, Y1
	VMULPS       32(BX), Y2, Y2
	VMULPS       64(BX), Y3, Y3
	VMULPS       96(BX), Y4, Y4
	VADDPS       Y2, Y1, Y1
	VADDPS       Y3, Y1, Y1
	VADDPS       Y4, Y1, Y1
	VPBROADCASTW (AX), X5
	VCVTPH2PS    X5, Y5
	VMULPS       Y5, Y1, Y1
	VADDPS       Y1, Y0, Y0
	ADDQ         $18, AX
	ADDQ         $128, BX
	DECQ         CX
	JNZ          q4block

	SUM8
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	ADDQ   R9, SI
	DECQ   R8
	JNZ    q4row
	VZEROUPPER
	RET
