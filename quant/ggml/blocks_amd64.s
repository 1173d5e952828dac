#include "textflag.h"
#include "blocks_amd64.h"

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

// func dotQ8_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is the fp16 scale d, then 32 int8 codes: VPMOVSXBD widens 8
// codes at a time, lane k taking codes k, k+8, k+16, k+24.
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-48
	DOTARGS

q8row:
	ROWSTART

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

	ROWEND
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
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15
	VPBROADCASTD eight<>(SB), Y14

q4row:
	ROWSTART

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

	ROWEND
	JNZ    q4row
	VZEROUPPER
	RET

// func dotQ8_0AVX512(y *float32, w *byte, rows, rowBytes int, x *float32, blocks, rowStep, yStep int)
//
// dotQ8_0AVX2 on rows pairs of rows: row i at w+i·rowStep and row i+half
// at rowBytes (half·rowStep) further, its output yStep bytes after y[i],
// so that W is read as two runs in order (see pairedRows). Z0's low 256
// bits hold the first row's 8 lanes, its high 256 bits the second's, and every
// instruction does on each half what dotQ8_0AVX2 does on Y0 for one row,
// in the same order, so each row's bits are unchanged. The codes k..k+7 of
// the two rows go into one XMM (PAIRQ) that VPMOVSXBD widens to
// the two halves; x's 8 floats are broadcast to both halves
// (VBROADCASTF32X8), the two scales each to its half (SCALE2).
TEXT ·dotQ8_0AVX512(SB), NOSPLIT, $0-64
	DOTARGS
	MOVQ rowStep+48(FP), R11
	MOVQ yStep+56(FP), R12

q8row2:
	ROWSTART

q8block2:
	PAIRQ(2, X1)
	PAIRQ(10, X2)
	PAIRQ(18, X3)
	PAIRQ(26, X4)
	VPMOVSXBD       X1, Z1
	VPMOVSXBD       X2, Z2
	VPMOVSXBD       X3, Z3
	VPMOVSXBD       X4, Z4
	ADDBLOCK2
	ADDQ            $34, AX
	ADDQ            $128, BX
	DECQ            CX
	JNZ             q8block2

	ROW2END
	JNZ    q8row2
	VZEROUPPER
	RET

// func dotQ4_0AVX512(y *float32, w *byte, rows, rowBytes int, x *float32, blocks, rowStep, yStep int)
//
// dotQ4_0AVX2 on rows pairs of rows, laid out as in
// dotQ8_0AVX512: bytes 0-7 and 8-15 of the two rows' blocks go into one
// XMM each (PAIRQ), which VPMOVZXBD widens to the two halves.
TEXT ·dotQ4_0AVX512(SB), NOSPLIT, $0-64
	DOTARGS
	MOVQ rowStep+48(FP), R11
	MOVQ yStep+56(FP), R12
	VPBROADCASTD nibbleMask<>(SB), Z15
	VPBROADCASTD eight<>(SB), Z14

q4row2:
	ROWSTART

q4block2:
	PAIRQ(2, X1)
	PAIRQ(10, X2)
	VPMOVZXBD       X1, Z1
	VPMOVZXBD       X2, Z2
	VPSRLD          $4, Z1, Z3
	VPSRLD          $4, Z2, Z4
	VPANDD          Z15, Z1, Z1
	VPANDD          Z15, Z2, Z2
	VPSUBD          Z14, Z1, Z1
	VPSUBD          Z14, Z2, Z2
	VPSUBD          Z14, Z3, Z3
	VPSUBD          Z14, Z4, Z4
	ADDBLOCK2
	ADDQ            $18, AX
	ADDQ            $128, BX
	DECQ            CX
	JNZ             q4block2

	ROW2END
	JNZ    q4row2
	VZEROUPPER
	RET

DATA shifts0to31<>+0(SB)/8, $0x0000000100000000
DATA shifts0to31<>+8(SB)/8, $0x0000000300000002
DATA shifts0to31<>+16(SB)/8, $0x0000000500000004
DATA shifts0to31<>+24(SB)/8, $0x0000000700000006
DATA shifts0to31<>+32(SB)/8, $0x0000000900000008
DATA shifts0to31<>+40(SB)/8, $0x0000000b0000000a
DATA shifts0to31<>+48(SB)/8, $0x0000000d0000000c
DATA shifts0to31<>+56(SB)/8, $0x0000000f0000000e
DATA shifts0to31<>+64(SB)/8, $0x0000001100000010
DATA shifts0to31<>+72(SB)/8, $0x0000001300000012
DATA shifts0to31<>+80(SB)/8, $0x0000001500000014
DATA shifts0to31<>+88(SB)/8, $0x0000001700000016
DATA shifts0to31<>+96(SB)/8, $0x0000001900000018
DATA shifts0to31<>+104(SB)/8, $0x0000001b0000001a
DATA shifts0to31<>+112(SB)/8, $0x0000001d0000001c
DATA shifts0to31<>+120(SB)/8, $0x0000001f0000001e
GLOBL shifts0to31<>(SB), RODATA|NOPTR, $128

DATA bit4<>+0(SB)/4, $0x10
GLOBL bit4<>(SB), RODATA|NOPTR, $4

DATA sixteen<>+0(SB)/4, $16
GLOBL sixteen<>(SB), RODATA|NOPTR, $4

// func dotQ5_0AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is the fp16 scale d, the 32 fifth bits qh (bit j for code j),
// then 16 bytes of low nibbles as Q4_0's. Each lane shifts its own bits of
// qh into place (VPSRLVD by the lane's code number).
TEXT ·dotQ5_0AVX2(SB), NOSPLIT, $0-48
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15
	VPBROADCASTD sixteen<>(SB), Y14
	VPBROADCASTD bit4<>(SB), Y13
	VMOVDQU      shifts0to31<>+0(SB), Y9
	VMOVDQU      shifts0to31<>+32(SB), Y10
	VMOVDQU      shifts0to31<>+64(SB), Y11
	VMOVDQU      shifts0to31<>+96(SB), Y12

q5row:
	ROWSTART

q5block:
	VPMOVZXBD    6(AX), Y1
	VPMOVZXBD    14(AX), Y2
	VPBROADCASTD 2(AX), Y6
	VPSRLD       $4, Y1, Y3
	VPSRLD       $4, Y2, Y4
	VPAND        Y15, Y1, Y1
	VPAND        Y15, Y2, Y2
	VPSRLVD      Y9, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y1, Y1
	VPSRLVD      Y10, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y2, Y2
	VPSRLVD      Y11, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y3, Y3
	VPSRLVD      Y12, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y4, Y4
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
	ADDQ         $22, AX
	ADDQ         $128, BX
	DECQ         CX
	JNZ          q5block

	ROWEND
	JNZ    q5row
	VZEROUPPER
	RET

// func dotQ4_1AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is fp16 d and m, then 16 bytes of nibbles as Q4_0's; each lane
// adds d times its products, then m times its sum of x.
TEXT ·dotQ4_1AVX2(SB), NOSPLIT, $0-48
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15

q41row:
	ROWSTART

q41block:
	VPMOVZXBD    4(AX), Y1
	VPMOVZXBD    12(AX), Y2
	VPSRLD       $4, Y1, Y3
	VPSRLD       $4, Y2, Y4
	VPAND        Y15, Y1, Y1
	VPAND        Y15, Y2, Y2
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
	VMOVUPS      (BX), Y6
	VADDPS       32(BX), Y6, Y6
	VADDPS       64(BX), Y6, Y6
	VADDPS       96(BX), Y6, Y6
	VPBROADCASTW 2(AX), X5
	VCVTPH2PS    X5, Y5
	VMULPS       Y5, Y6, Y6
	VADDPS       Y6, Y0, Y0
	ADDQ         $20, AX
	ADDQ         $128, BX
	DECQ         CX
	JNZ          q41block

	ROWEND
	JNZ    q41row
	VZEROUPPER
	RET

// func dotQ5_1AVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is fp16 d and m, qh and nibbles as Q5_0's; each lane adds d
// times its products, then m times its sum of x.
TEXT ·dotQ5_1AVX2(SB), NOSPLIT, $0-48
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15
	VPBROADCASTD bit4<>(SB), Y13
	VMOVDQU      shifts0to31<>+0(SB), Y9
	VMOVDQU      shifts0to31<>+32(SB), Y10
	VMOVDQU      shifts0to31<>+64(SB), Y11
	VMOVDQU      shifts0to31<>+96(SB), Y12

q51row:
	ROWSTART

q51block:
	VPMOVZXBD    8(AX), Y1
	VPMOVZXBD    16(AX), Y2
	VPBROADCASTD 4(AX), Y6
	VPSRLD       $4, Y1, Y3
	VPSRLD       $4, Y2, Y4
	VPAND        Y15, Y1, Y1
	VPAND        Y15, Y2, Y2
	VPSRLVD      Y9, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y1, Y1
	VPSRLVD      Y10, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y2, Y2
	VPSRLVD      Y11, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y3, Y3
	VPSRLVD      Y12, Y6, Y5
	VPSLLD       $4, Y5, Y5
	VPAND        Y13, Y5, Y5
	VPOR         Y5, Y4, Y4
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
	VMOVUPS      (BX), Y6
	VADDPS       32(BX), Y6, Y6
	VADDPS       64(BX), Y6, Y6
	VADDPS       96(BX), Y6, Y6
	VPBROADCASTW 2(AX), X5
	VCVTPH2PS    X5, Y5
	VMULPS       Y5, Y6, Y6
	VADDPS       Y6, Y0, Y0
	ADDQ         $24, AX
	ADDQ         $128, BX
	DECQ         CX
	JNZ          q51block

	ROWEND
	JNZ    q51row
	VZEROUPPER
	RET

DATA nibbleMask32<>+0(SB)/4, $0x0f0f0f0f
GLOBL nibbleMask32<>(SB), RODATA|NOPTR, $4

DATA bits45<>+0(SB)/4, $0x30303030
GLOBL bits45<>(SB), RODATA|NOPTR, $4

DATA thirtyTwo<>+0(SB)/4, $0x20202020
GLOBL thirtyTwo<>(SB), RODATA|NOPTR, $4

// func dotQ4_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is fp16 d and dmin, 12 bytes of packed 6-bit scales and mins,
// then 4 groups of 32 bytes, each holding a sub-block in its low nibbles
// and the next in its high ones. The frame holds the block's 8 scales and
// 8 mins as float32, unpacked in general registers as scaleMinK4 does.
TEXT ·dotQ4_KAVX2(SB), NOSPLIT, $64-48
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15

q4krow:
	ROWSTART

q4kblock:
	SCALEMINK4

	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	Q4KGROUP(16, 0, 0)
	Q4KGROUP(48, 256, 8)
	Q4KGROUP(80, 512, 16)
	Q4KGROUP(112, 768, 24)

	// acc += d·sd, then acc −= dmin·sm.
	ADDSCALED(0)
	SUBSCALED(2)
	ADDQ         $144, AX
	ADDQ         $1024, BX
	DECQ         CX
	JNZ          q4kblock

	ROWEND
	JNZ    q4krow
	VZEROUPPER
	RET

// func dotQ5_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is Q4_K's with 32 bytes qh of fifth bits after the scales: bit
// 2c of qh[l] for code l of sub-block 2c, bit 2c+1 for sub-block 2c+1.
TEXT ·dotQ5_KAVX2(SB), NOSPLIT, $64-48
	DOTARGS
	VPBROADCASTD nibbleMask<>(SB), Y15
	VPBROADCASTD bit4<>(SB), Y14

q5krow:
	ROWSTART

q5kblock:
	SCALEMINK4

	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	Q5KGROUP(48, 0, 0, 0, 1)
	Q5KGROUP(80, 256, 8, 2, 3)
	Q5KGROUP(112, 512, 16, 4, 5)
	Q5KGROUP(144, 768, 24, 6, 7)

	// acc += d·sd, then acc −= dmin·sm.
	ADDSCALED(0)
	SUBSCALED(2)
	ADDQ         $176, AX
	ADDQ         $1024, BX
	DECQ         CX
	JNZ          q5kblock

	ROWEND
	JNZ    q5krow
	VZEROUPPER
	RET

// func dotQ6_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is 128 bytes ql of low nibbles, 64 bytes qh of high bit pairs,
// 16 int8 scales, fp16 d. The frame holds a half's 128 codes as int8 (0-127)
// and the block's 16 scales as float32 (128-191).
TEXT ·dotQ6_KAVX2(SB), NOSPLIT, $192-48
	DOTARGS
	VPBROADCASTD nibbleMask32<>(SB), Y15
	VPBROADCASTD bits45<>(SB), Y14
	VPBROADCASTD thirtyTwo<>(SB), Y13

q6krow:
	ROWSTART

q6kblock:
	VPMOVSXBD 192(AX), Y6
	VCVTDQ2PS Y6, Y6
	VMOVUPS   Y6, 128(SP)
	VPMOVSXBD 200(AX), Y6
	VCVTDQ2PS Y6, Y6
	VMOVUPS   Y6, 160(SP)
	VXORPS    Y8, Y8, Y8
	Q6KHALF(0, 128)
	Q6KSUB(0, 0, 128)
	Q6KSUB(16, 64, 132)
	Q6KSUB(32, 128, 136)
	Q6KSUB(48, 192, 140)
	Q6KSUB(64, 256, 144)
	Q6KSUB(80, 320, 148)
	Q6KSUB(96, 384, 152)
	Q6KSUB(112, 448, 156)
	Q6KHALF(64, 160)
	Q6KSUB(0, 512, 160)
	Q6KSUB(16, 576, 164)
	Q6KSUB(32, 640, 168)
	Q6KSUB(48, 704, 172)
	Q6KSUB(64, 768, 176)
	Q6KSUB(80, 832, 180)
	Q6KSUB(96, 896, 184)
	Q6KSUB(112, 960, 188)

	// acc += d·sd.
	ADDSCALED(208)
	ADDQ         $210, AX
	ADDQ         $1024, BX
	DECQ         CX
	JNZ          q6kblock

	ROWEND
	JNZ    q6krow
	VZEROUPPER
	RET

DATA lowBits2<>+0(SB)/4, $0x03030303
GLOBL lowBits2<>(SB), RODATA|NOPTR, $4

DATA lowBit<>+0(SB)/4, $0x01010101
GLOBL lowBit<>(SB), RODATA|NOPTR, $4

DATA fours<>+0(SB)/4, $0x04040404
GLOBL fours<>(SB), RODATA|NOPTR, $4

// func dotQ2_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is 16 bytes of scales (low nibble) and mins (high nibble), 64
// bytes of 2-bit codes, fp16 d and dmin. A half's 32 code bytes hold its
// 32-element quarter j in bits 2j, 2j+1. The frame holds a half's 128
// codes as bytes (0-127), the block's 16 scales (128-191) and 16 mins
// (192-255) as float32.
TEXT ·dotQ2_KAVX2(SB), NOSPLIT, $256-48
	DOTARGS
	VPBROADCASTD lowBits2<>(SB), Y15
	VPBROADCASTD nibbleMask<>(SB), Y14

q2krow:
	ROWSTART

q2kblock:
	VPMOVZXBD 0(AX), Y1
	VPMOVZXBD 8(AX), Y2
	VPAND     Y14, Y1, Y3
	VCVTDQ2PS Y3, Y3
	VMOVUPS   Y3, 128(SP)
	VPAND     Y14, Y2, Y3
	VCVTDQ2PS Y3, Y3
	VMOVUPS   Y3, 160(SP)
	VPSRLD    $4, Y1, Y3
	VCVTDQ2PS Y3, Y3
	VMOVUPS   Y3, 192(SP)
	VPSRLD    $4, Y2, Y3
	VCVTDQ2PS Y3, Y3
	VMOVUPS   Y3, 224(SP)
	VXORPS    Y8, Y8, Y8
	VXORPS    Y9, Y9, Y9
	VMOVDQU   16(AX), Y1
	VPSRLW    $0, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 0(SP)
	VPSRLW    $2, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 32(SP)
	VPSRLW    $4, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 64(SP)
	VPSRLW    $6, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 96(SP)
	Q2KSUB(0, 0, 128)
	Q2KSUB(16, 64, 132)
	Q2KSUB(32, 128, 136)
	Q2KSUB(48, 192, 140)
	Q2KSUB(64, 256, 144)
	Q2KSUB(80, 320, 148)
	Q2KSUB(96, 384, 152)
	Q2KSUB(112, 448, 156)
	VMOVDQU   48(AX), Y1
	VPSRLW    $0, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 0(SP)
	VPSRLW    $2, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 32(SP)
	VPSRLW    $4, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 64(SP)
	VPSRLW    $6, Y1, Y3
	VPAND     Y15, Y3, Y3
	VMOVDQU   Y3, 96(SP)
	Q2KSUB(0, 512, 160)
	Q2KSUB(16, 576, 164)
	Q2KSUB(32, 640, 168)
	Q2KSUB(48, 704, 172)
	Q2KSUB(64, 768, 176)
	Q2KSUB(80, 832, 180)
	Q2KSUB(96, 896, 184)
	Q2KSUB(112, 960, 188)

	// acc += d·sd, then acc −= dmin·sm.
	ADDSCALED(80)
	SUBSCALED(82)
	ADDQ         $84, AX
	ADDQ         $1024, BX
	DECQ         CX
	JNZ          q2kblock

	ROWEND
	JNZ    q2krow
	VZEROUPPER
	RET

// func dotQ3_KAVX2(y *float32, w *byte, rows, rowBytes int, x *float32, blocks int)
//
// A block is 32 bytes hmask, 64 bytes of 2-bit codes laid out as Q2_K's,
// 12 bytes of packed 6-bit scales, fp16 d. Quarter j of half h takes its
// high bits from bit 4h+j of the hmask bytes; a code is its 2 bits, less 4
// if its high bit is clear. The frame holds a half's 128 codes as int8
// (0-127) and the block's 16 scales as float32 (128-191), unpacked in
// general registers as q3KScale does.
TEXT ·dotQ3_KAVX2(SB), NOSPLIT, $192-48
	DOTARGS
	VPBROADCASTD lowBits2<>(SB), Y15
	VPBROADCASTD lowBit<>(SB), Y14
	VPBROADCASTD fours<>(SB), Y13
	VPBROADCASTD thirtyTwo<>(SB), Y12

q3krow:
	ROWSTART

q3kblock:
	// Scales 0-7: the low nibbles of bytes 0-7 of the scales, 8-15 their
	// high nibbles; above them bits 0-1 (scales 0-3), 2-3 (4-7), 4-5
	// (8-11) and 6-7 (12-15) of bytes 8-11.
	MOVQ      96(AX), R11
	MOVL      104(AX), R12
	MOVL      R12, R13
	ANDL      $0x03030303, R13
	SHRL      $2, R12
	ANDL      $0x03030303, R12
	SHLQ      $32, R12
	ORQ       R13, R12
	SHLQ      $4, R12
	MOVQ      $0x0f0f0f0f0f0f0f0f, R13
	ANDQ      R11, R13
	ORQ       R13, R12
	MOVQ      R12, X1
	MOVL      104(AX), R12
	MOVL      R12, R13
	SHRL      $4, R13
	ANDL      $0x03030303, R13
	SHRL      $6, R12
	ANDL      $0x03030303, R12
	SHLQ      $32, R12
	ORQ       R13, R12
	SHLQ      $4, R12
	SHRQ      $4, R11
	MOVQ      $0x0f0f0f0f0f0f0f0f, R13
	ANDQ      R13, R11
	ORQ       R11, R12
	MOVQ      R12, X2
	VPSUBB    X12, X1, X1
	VPSUBB    X12, X2, X2
	VPMOVSXBD X1, Y1
	VPMOVSXBD X2, Y2
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VMOVUPS   Y1, 128(SP)
	VMOVUPS   Y2, 160(SP)
	VMOVDQU   0(AX), Y2
	VXORPS    Y8, Y8, Y8
	VMOVDQU   32(AX), Y1
	VPSRLW    $0, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $0, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 0(SP)
	VPSRLW    $2, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $1, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 32(SP)
	VPSRLW    $4, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $2, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 64(SP)
	VPSRLW    $6, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $3, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 96(SP)
	Q6KSUB(0, 0, 128)
	Q6KSUB(16, 64, 132)
	Q6KSUB(32, 128, 136)
	Q6KSUB(48, 192, 140)
	Q6KSUB(64, 256, 144)
	Q6KSUB(80, 320, 148)
	Q6KSUB(96, 384, 152)
	Q6KSUB(112, 448, 156)
	VMOVDQU   64(AX), Y1
	VPSRLW    $0, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $4, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 0(SP)
	VPSRLW    $2, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $5, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 32(SP)
	VPSRLW    $4, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $6, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 64(SP)
	VPSRLW    $6, Y1, Y3
	VPAND     Y15, Y3, Y3
	VPSRLW    $7, Y2, Y4
	VPAND     Y14, Y4, Y4
	VPSLLW    $2, Y4, Y4
	VPOR      Y4, Y3, Y3
	VPSUBB    Y13, Y3, Y3
	VMOVDQU   Y3, 96(SP)
	Q6KSUB(0, 512, 160)
	Q6KSUB(16, 576, 164)
	Q6KSUB(32, 640, 168)
	Q6KSUB(48, 704, 172)
	Q6KSUB(64, 768, 176)
	Q6KSUB(80, 832, 180)
	Q6KSUB(96, 896, 184)
	Q6KSUB(112, 960, 188)

	// acc += d·sd.
	ADDSCALED(108)
	ADDQ         $110, AX
	ADDQ         $1024, BX
	DECQ         CX
	JNZ          q3kblock

	ROWEND
	JNZ    q3krow
	VZEROUPPER
	RET
