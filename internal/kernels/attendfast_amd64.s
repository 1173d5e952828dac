#include "textflag.h"

// The lane of the folded scores that holds key j (see attendScores16).
DATA scoreOrder<>+0(SB)/4, $0
DATA scoreOrder<>+4(SB)/4, $4
DATA scoreOrder<>+8(SB)/4, $8
DATA scoreOrder<>+12(SB)/4, $12
DATA scoreOrder<>+16(SB)/4, $1
DATA scoreOrder<>+20(SB)/4, $5
DATA scoreOrder<>+24(SB)/4, $9
DATA scoreOrder<>+28(SB)/4, $13
DATA scoreOrder<>+32(SB)/4, $2
DATA scoreOrder<>+36(SB)/4, $6
DATA scoreOrder<>+40(SB)/4, $10
DATA scoreOrder<>+44(SB)/4, $14
DATA scoreOrder<>+48(SB)/4, $3
DATA scoreOrder<>+52(SB)/4, $7
DATA scoreOrder<>+56(SB)/4, $11
DATA scoreOrder<>+60(SB)/4, $15
GLOBL scoreOrder<>(SB), RODATA|NOPTR, $64

// The folds add two shuffles of a and b into dst (Z18, Z19 scratch).
#define FOLD128(a, b, dst) \
	VSHUFF32X4 $0x44, b, a, Z18 \
	VSHUFF32X4 $0xEE, b, a, Z19 \
	VADDPS     Z19, Z18, dst

#define FOLD128B(a, b, dst) \
	VSHUFF32X4 $0x88, b, a, Z18 \
	VSHUFF32X4 $0xDD, b, a, Z19 \
	VADDPS     Z19, Z18, dst

#define FOLD32(a, b, dst) \
	VSHUFPS $0x44, b, a, Z18 \
	VSHUFPS $0xEE, b, a, Z19 \
	VADDPS  Z19, Z18, dst

#define FOLD32B(a, b, dst) \
	VSHUFPS $0x88, b, a, Z18 \
	VSHUFPS $0xDD, b, a, Z19 \
	VADDPS  Z19, Z18, dst

// func attendScores16(scores *float32, blocks int, q *float32, chunks int, keys *float32, stride int, scale float32)
// Key j of a block sums into Z_j; the 16 sums are then folded together,
// halves of registers added pairwise, so that one register ends holding
// the 16 dot products (in the order scoreOrder undoes).
TEXT ·attendScores16(SB), NOSPLIT, $0-52
	MOVQ         scores+0(FP), DI
	MOVQ         blocks+8(FP), CX
	MOVQ         q+16(FP), DX
	MOVQ         chunks+24(FP), BX
	MOVQ         keys+32(FP), SI
	MOVQ         stride+40(FP), R8
	VBROADCASTSS scale+48(FP), Z17
	VMOVUPS      scoreOrder<>(SB), Z20
	LEAQ         (R8)(R8*2), R12 // 3·stride

block:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ   SI, R9
	LEAQ   (SI)(R8*4), R10
	LEAQ   (R10)(R8*4), R11
	LEAQ   (R11)(R8*4), R13
	MOVQ   DX, R14
	MOVQ   BX, AX

chunk:
	VMOVUPS     (R14), Z16
	VFMADD231PS (R9), Z16, Z0
	VFMADD231PS (R9)(R8*1), Z16, Z1
	VFMADD231PS (R9)(R8*2), Z16, Z2
	VFMADD231PS (R9)(R12*1), Z16, Z3
	VFMADD231PS (R10), Z16, Z4
	VFMADD231PS (R10)(R8*1), Z16, Z5
	VFMADD231PS (R10)(R8*2), Z16, Z6
	VFMADD231PS (R10)(R12*1), Z16, Z7
	VFMADD231PS (R11), Z16, Z8
	VFMADD231PS (R11)(R8*1), Z16, Z9
	VFMADD231PS (R11)(R8*2), Z16, Z10
	VFMADD231PS (R11)(R12*1), Z16, Z11
	VFMADD231PS (R13), Z16, Z12
	VFMADD231PS (R13)(R8*1), Z16, Z13
	VFMADD231PS (R13)(R8*2), Z16, Z14
	VFMADD231PS (R13)(R12*1), Z16, Z15
	ADDQ        $64, R14
	ADDQ        $64, R9
	ADDQ        $64, R10
	ADDQ        $64, R11
	ADDQ        $64, R13
	DECQ        AX
	JNZ         chunk

	// Z_k = [a_2k folded to 8 lanes, a_2k+1 folded to 8 lanes].
	FOLD128(Z0, Z1, Z0)
	FOLD128(Z2, Z3, Z1)
	FOLD128(Z4, Z5, Z2)
	FOLD128(Z6, Z7, Z3)
	FOLD128(Z8, Z9, Z4)
	FOLD128(Z10, Z11, Z5)
	FOLD128(Z12, Z13, Z6)
	FOLD128(Z14, Z15, Z7)

	// Quarter i of Z_m: key 4m+i folded to 4 lanes.
	FOLD128B(Z0, Z1, Z0)
	FOLD128B(Z2, Z3, Z1)
	FOLD128B(Z4, Z5, Z2)
	FOLD128B(Z6, Z7, Z3)

	// Quarter i of Z0: keys i and 4+i in 2 lanes each; of Z1: 8+i, 12+i.
	FOLD32(Z0, Z1, Z0)
	FOLD32(Z2, Z3, Z1)

	// Quarter i of Z0: keys i, 4+i, 8+i, 12+i.
	FOLD32B(Z0, Z1, Z0)
	VPERMPS Z0, Z20, Z0
	VMULPS  Z17, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	LEAQ    (SI)(R8*8), SI
	LEAQ    (SI)(R8*8), SI
	DECQ    CX
	JNZ     block
	VZEROUPPER
	RET

// func attendValues4(out *float32, chunks int, w *float32, n int, values *float32, stride int)
// Each 16 elements of out in four partial sums (keys t mod 4), added at
// the end.
TEXT ·attendValues4(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ chunks+8(FP), CX
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), BX
	MOVQ values+32(FP), SI
	MOVQ stride+40(FP), R8
	LEAQ (R8)(R8*2), R12

vchunk:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ   DX, R9
	MOVQ   SI, R10
	MOVQ   BX, AX

four:
	CMPQ         AX, $4
	JLT          one
	VBROADCASTSS (R9), Z4
	VBROADCASTSS 4(R9), Z5
	VBROADCASTSS 8(R9), Z6
	VBROADCASTSS 12(R9), Z7
	VFMADD231PS  (R10), Z4, Z0
	VFMADD231PS  (R10)(R8*1), Z5, Z1
	VFMADD231PS  (R10)(R8*2), Z6, Z2
	VFMADD231PS  (R10)(R12*1), Z7, Z3
	ADDQ         $16, R9
	LEAQ         (R10)(R8*4), R10
	SUBQ         $4, AX
	JMP          four

one:
	TESTQ        AX, AX
	JZ           vsum
	VBROADCASTSS (R9), Z4
	VFMADD231PS  (R10), Z4, Z0
	ADDQ         $4, R9
	ADDQ         R8, R10
	DECQ         AX
	JMP          one

vsum:
	VADDPS  Z1, Z0, Z0
	VADDPS  Z3, Z2, Z2
	VADDPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNZ     vchunk
	VZEROUPPER
	RET

// func attendScores8AVX2(scores *float32, blocks int, q *float32, chunks int, keys *float32, stride int, scale float32)
// Key j of a block of 8 sums into Y_j, 8 elements of the head at a time;
// two rounds of VHADDPS and one of VPERM2F128 then fold the eight sums
// into one register, key j in lane j.
TEXT ·attendScores8AVX2(SB), NOSPLIT, $0-52
	MOVQ         scores+0(FP), DI
	MOVQ         blocks+8(FP), CX
	MOVQ         q+16(FP), DX
	MOVQ         chunks+24(FP), BX
	MOVQ         keys+32(FP), SI
	MOVQ         stride+40(FP), R8
	VBROADCASTSS scale+48(FP), Y13
	LEAQ         (R8)(R8*2), R12 // 3·stride

block8:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, R9
	LEAQ   (SI)(R8*4), R10
	MOVQ   DX, R14
	MOVQ   BX, AX

chunk8:
	VMOVUPS     (R14), Y8
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS (R9)(R8*1), Y8, Y1
	VFMADD231PS (R9)(R8*2), Y8, Y2
	VFMADD231PS (R9)(R12*1), Y8, Y3
	VFMADD231PS (R10), Y8, Y4
	VFMADD231PS (R10)(R8*1), Y8, Y5
	VFMADD231PS (R10)(R8*2), Y8, Y6
	VFMADD231PS (R10)(R12*1), Y8, Y7
	ADDQ        $32, R14
	ADDQ        $32, R9
	ADDQ        $32, R10
	DECQ        AX
	JNZ         chunk8

	// Per 128-bit half: lanes of Y0 hold pair sums of keys 0, 1, 2, 3,
	// lanes of Y4 of keys 4–7; the halves are then added.
	VHADDPS    Y1, Y0, Y0
	VHADDPS    Y3, Y2, Y2
	VHADDPS    Y5, Y4, Y4
	VHADDPS    Y7, Y6, Y6
	VHADDPS    Y2, Y0, Y0
	VHADDPS    Y6, Y4, Y4
	VPERM2F128 $0x20, Y4, Y0, Y1
	VPERM2F128 $0x31, Y4, Y0, Y2
	VADDPS     Y2, Y1, Y1
	VMULPS     Y13, Y1, Y1
	VMOVUPS    Y1, (DI)
	ADDQ       $32, DI
	LEAQ       (SI)(R8*8), SI
	DECQ       CX
	JNZ        block8
	VZEROUPPER
	RET

// func attendValues4AVX2(out *float32, chunks int, w *float32, n int, values *float32, stride int)
// attendValues4 with each 16 elements of out in two registers: the four
// partial sums (keys t mod 4) are Y0/Y1, Y2/Y3, Y4/Y5, Y6/Y7.
TEXT ·attendValues4AVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ chunks+8(FP), CX
	MOVQ w+16(FP), DX
	MOVQ n+24(FP), BX
	MOVQ values+32(FP), SI
	MOVQ stride+40(FP), R8
	LEAQ (R8)(R8*2), R12

vchunk2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   DX, R9
	MOVQ   SI, R10
	MOVQ   BX, AX

four2:
	CMPQ         AX, $4
	JLT          one2
	VBROADCASTSS (R9), Y8
	VBROADCASTSS 4(R9), Y9
	VBROADCASTSS 8(R9), Y10
	VBROADCASTSS 12(R9), Y11
	VFMADD231PS  (R10), Y8, Y0
	VFMADD231PS  32(R10), Y8, Y1
	VFMADD231PS  (R10)(R8*1), Y9, Y2
	VFMADD231PS  32(R10)(R8*1), Y9, Y3
	VFMADD231PS  (R10)(R8*2), Y10, Y4
	VFMADD231PS  32(R10)(R8*2), Y10, Y5
	VFMADD231PS  (R10)(R12*1), Y11, Y6
	VFMADD231PS  32(R10)(R12*1), Y11, Y7
	ADDQ         $16, R9
	LEAQ         (R10)(R8*4), R10
	SUBQ         $4, AX
	JMP          four2

one2:
	TESTQ        AX, AX
	JZ           vsum2
	VBROADCASTSS (R9), Y8
	VFMADD231PS  (R10), Y8, Y0
	VFMADD231PS  32(R10), Y8, Y1
	ADDQ         $4, R9
	ADDQ         R8, R10
	DECQ         AX
	JMP          one2

vsum2:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y6, Y4, Y4
	VADDPS  Y4, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VADDPS  Y7, Y5, Y5
	VADDPS  Y5, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	DECQ    CX
	JNZ     vchunk2
	VZEROUPPER
	RET
