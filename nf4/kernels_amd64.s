// NF4 kernels for amd64: decode 4-bit codes to float32 and multiply them
// into rows of x, 32 codes (16 bytes) per step. The Go declarations and the
// calling convention (groups, scales per block) are in kernels_amd64.go; the
// summation order MulT must follow is described in kernels.go.
//
// Byte k of a group holds element 2k in its high nibble and element 2k+1 in
// its low nibble. The lookup of a code in the block's scaled codebook
// (codebook[i]·scale, the same float32 products the scalar code uses) is
// one VPERMPS over a 16-entry zmm table with AVX-512, or two VPERMPS over
// the 8-entry halves and a blend on bit 3 of the code with AVX2.

#include "textflag.h"
#include "ahead_amd64.h"

// spreadLo and spreadHi are VPSHUFB patterns over the 16 code bytes
// repeated in each 128-bit lane: dword j gets byte j/2 (spreadLo, elements
// 0..15) or byte 8+j/2 (spreadHi, elements 16..31) in its low byte and zeros
// above (index 0x80).
DATA spreadLo<>+0(SB)/8, $0x8080800080808000
DATA spreadLo<>+8(SB)/8, $0x8080800180808001
DATA spreadLo<>+16(SB)/8, $0x8080800280808002
DATA spreadLo<>+24(SB)/8, $0x8080800380808003
DATA spreadLo<>+32(SB)/8, $0x8080800480808004
DATA spreadLo<>+40(SB)/8, $0x8080800580808005
DATA spreadLo<>+48(SB)/8, $0x8080800680808006
DATA spreadLo<>+56(SB)/8, $0x8080800780808007
GLOBL spreadLo<>(SB), RODATA|NOPTR, $64

DATA spreadHi<>+0(SB)/8, $0x8080800880808008
DATA spreadHi<>+8(SB)/8, $0x8080800980808009
DATA spreadHi<>+16(SB)/8, $0x8080800a8080800a
DATA spreadHi<>+24(SB)/8, $0x8080800b8080800b
DATA spreadHi<>+32(SB)/8, $0x8080800c8080800c
DATA spreadHi<>+40(SB)/8, $0x8080800d8080800d
DATA spreadHi<>+48(SB)/8, $0x8080800e8080800e
DATA spreadHi<>+56(SB)/8, $0x8080800f8080800f
GLOBL spreadHi<>(SB), RODATA|NOPTR, $64

// nibbleShift moves the high nibble down in the dwords of even elements;
// odd elements keep both nibbles, and VPERMPS reads only the low 4 bits.
DATA nibbleShift<>+0(SB)/4, $4
DATA nibbleShift<>+4(SB)/4, $0
DATA nibbleShift<>+8(SB)/4, $4
DATA nibbleShift<>+12(SB)/4, $0
DATA nibbleShift<>+16(SB)/4, $4
DATA nibbleShift<>+20(SB)/4, $0
DATA nibbleShift<>+24(SB)/4, $4
DATA nibbleShift<>+28(SB)/4, $0
DATA nibbleShift<>+32(SB)/4, $4
DATA nibbleShift<>+36(SB)/4, $0
DATA nibbleShift<>+40(SB)/4, $4
DATA nibbleShift<>+44(SB)/4, $0
DATA nibbleShift<>+48(SB)/4, $4
DATA nibbleShift<>+52(SB)/4, $0
DATA nibbleShift<>+56(SB)/4, $4
DATA nibbleShift<>+60(SB)/4, $0
GLOBL nibbleShift<>(SB), RODATA|NOPTR, $64

// scalePair holds the dwords 0…7: the value of a code's top three bits
// that selects each 32-entry pair of scalesAVX512's table.
DATA scalePair<>+0(SB)/4, $0
DATA scalePair<>+4(SB)/4, $1
DATA scalePair<>+8(SB)/4, $2
DATA scalePair<>+12(SB)/4, $3
DATA scalePair<>+16(SB)/4, $4
DATA scalePair<>+20(SB)/4, $5
DATA scalePair<>+24(SB)/4, $6
DATA scalePair<>+28(SB)/4, $7
GLOBL scalePair<>(SB), RODATA|NOPTR, $32

// nibbleShift256 moves element j of a broadcast dword of codes (byte k
// holds element 2k in its high nibble and 2k+1 in its low one) to the low
// nibble of dword j.
DATA nibbleShift256<>+0(SB)/4, $4
DATA nibbleShift256<>+4(SB)/4, $0
DATA nibbleShift256<>+8(SB)/4, $12
DATA nibbleShift256<>+12(SB)/4, $8
DATA nibbleShift256<>+16(SB)/4, $20
DATA nibbleShift256<>+20(SB)/4, $16
DATA nibbleShift256<>+24(SB)/4, $28
DATA nibbleShift256<>+28(SB)/4, $24
GLOBL nibbleShift256<>(SB), RODATA|NOPTR, $32

// The block loop shared by every kernel. Registers: BX scales, CX groups
// left, DX groups of the current block, R8 groups per block.
// NEWBLOCK512(done) / NEWBLOCK256(done) compute the block's table from (BX)
// (AVX-512: Z0 = codebook (Z7)·scale; AVX2: Y0, Y1 = the two halves of
// codebook·scale) and set DX to the groups to do in this block; the loop
// then reloads DX from R8 for the next block.
#define NEWBLOCK512(done) \
	TESTQ CX, CX; \
	JZ done; \
	VBROADCASTSS (BX), Z1; \
	VMULPS Z7, Z1, Z0; \
	ADDQ $4, BX; \
	CMPQ DX, CX; \
	CMOVQGT CX, DX; \
	SUBQ DX, CX

#define NEWBLOCK256(done) \
	TESTQ CX, CX; \
	JZ done; \
	VBROADCASTSS (BX), Y2; \
	VMULPS ·codebook+0(SB), Y2, Y0; \
	VMULPS ·codebook+32(SB), Y2, Y1; \
	ADDQ $4, BX; \
	CMPQ DX, CX; \
	CMOVQGT CX, DX; \
	SUBQ DX, CX

// DECODE512 turns the 16 bytes at (SI) into elements 0..15 in Z6 and 16..31
// in Z4. Uses Z2, Z3, Z5; needs Z0 (table), Z12, Z13 (spread patterns) and
// Z14 (nibble shifts). The code bytes are repeated in every 128-bit lane so
// that an in-lane VPSHUFB can give each element's dword its byte; a shift
// brings even elements' high nibble down, and one VPERMPS per 16 elements
// looks all of them up in order.
#define DECODE512 \
	VBROADCASTI32X4 (SI), Z2; \
	VPSHUFB         Z12, Z2, Z3; \
	VPSHUFB         Z13, Z2, Z5; \
	VPSRLVD         Z14, Z3, Z3; \
	VPSRLVD         Z14, Z5, Z5; \
	VPERMPS         Z0, Z3, Z6; \
	VPERMPS         Z0, Z5, Z4

// func decodeAVX512(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·decodeAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ scales+16(FP), BX
	MOVQ groups+24(FP), CX
	MOVQ firstGroups+32(FP), DX
	MOVQ blockGroups+40(FP), R8
	VMOVUPS ·codebook(SB), Z7
	VMOVDQU32 spreadLo<>(SB), Z12
	VMOVDQU32 spreadHi<>(SB), Z13
	VMOVDQU32 nibbleShift<>(SB), Z14

dec512block:
	NEWBLOCK512(dec512done)

dec512group:
	DECODE512
	VMOVUPS Z6, (DI)
	VMOVUPS Z4, 64(DI)
	ADDQ    $16, SI
	ADDQ    $128, DI
	DECQ    DX
	JNZ     dec512group
	MOVQ    R8, DX
	JMP     dec512block

dec512done:
	VZEROUPPER
	RET

// dot1AVX512 keeps lanes 0..15 in Z8 and 16..31 in Z9.
//
// func dot1AVX512(acc *[32]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·dot1AVX512(SB), NOSPLIT, $0-56
	MOVQ      acc+0(FP), AX
	MOVQ      codes+8(FP), SI
	MOVQ      x+16(FP), DI
	MOVQ      scales+24(FP), BX
	MOVQ      groups+32(FP), CX
	MOVQ      firstGroups+40(FP), DX
	MOVQ      blockGroups+48(FP), R8
	VMOVUPS   ·codebook(SB), Z7
	VMOVDQU32 spreadLo<>(SB), Z12
	VMOVDQU32 spreadHi<>(SB), Z13
	VMOVDQU32 nibbleShift<>(SB), Z14
	VMOVUPS   (AX), Z8  // lanes 0..15
	VMOVUPS   64(AX), Z9 // lanes 16..31

dot1_512block:
	NEWBLOCK512(dot1_512done)

dot1_512group:
	DECODE512
	VFMADD231PS (DI), Z6, Z8
	VFMADD231PS 64(DI), Z4, Z9
	ADDQ    $16, SI
	ADDQ    $128, DI
	DECQ    DX
	JNZ     dot1_512group
	MOVQ    R8, DX
	JMP     dot1_512block

dot1_512done:
	VMOVUPS Z8, (AX)
	VMOVUPS Z9, 64(AX)
	VZEROUPPER
	RET

// MULADD512(off, ZW, A0, A1, A2, A3) adds to A0..A3 the products of ZW with
// the 16 floats at off of each of the four rows of x (DI, DI+R9, DI+2·R9,
// DI+R10), each with one rounding (fused), as MulT's order requires.
#define MULADD512(off, ZW, A0, A1, A2, A3) \
	VFMADD231PS off(DI), ZW, A0; \
	VFMADD231PS off(DI)(R9*1), ZW, A1; \
	VFMADD231PS off(DI)(R9*2), ZW, A2; \
	VFMADD231PS off(DI)(R10*1), ZW, A3

// dot4AVX512 keeps the lanes of row q of x in Z(20+2q) (0..15) and
// Z(21+2q) (16..31); products go through Z16..Z19.
//
// func dot4AVX512(acc *[128]float32, codes *byte, x *float32, stride int, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·dot4AVX512(SB), NOSPLIT, $0-64
	MOVQ      acc+0(FP), AX
	MOVQ      codes+8(FP), SI
	MOVQ      x+16(FP), DI
	MOVQ      stride+24(FP), R9
	LEAQ      (R9)(R9*2), R10
	MOVQ      scales+32(FP), BX
	MOVQ      groups+40(FP), CX
	MOVQ      firstGroups+48(FP), DX
	MOVQ      blockGroups+56(FP), R8
	VMOVUPS   ·codebook(SB), Z7
	VMOVDQU32 spreadLo<>(SB), Z12
	VMOVDQU32 spreadHi<>(SB), Z13
	VMOVDQU32 nibbleShift<>(SB), Z14
	VMOVUPS   (AX), Z20   // row 0, lanes 0..15
	VMOVUPS   64(AX), Z21 // row 0, lanes 16..31
	VMOVUPS   128(AX), Z22
	VMOVUPS   192(AX), Z23
	VMOVUPS   256(AX), Z24
	VMOVUPS   320(AX), Z25
	VMOVUPS   384(AX), Z26
	VMOVUPS   448(AX), Z27

dot4_512block:
	NEWBLOCK512(dot4_512done)

dot4_512group:
	DECODE512
	MULADD512(0, Z6, Z20, Z22, Z24, Z26)
	MULADD512(64, Z4, Z21, Z23, Z25, Z27)
	ADDQ    $16, SI
	ADDQ    $128, DI
	DECQ    DX
	JNZ     dot4_512group
	MOVQ    R8, DX
	JMP     dot4_512block

dot4_512done:
	VMOVUPS Z20, (AX)
	VMOVUPS Z21, 64(AX)
	VMOVUPS Z22, 128(AX)
	VMOVUPS Z23, 192(AX)
	VMOVUPS Z24, 256(AX)
	VMOVUPS Z25, 320(AX)
	VMOVUPS Z26, 384(AX)
	VMOVUPS Z27, 448(AX)
	VZEROUPPER
	RET

// LOOKUP256(I, D) looks up the codes in the low nibbles of I's dwords
// into D: both halves of the table (VPERMPS reads the low three bits), then
// the upper half where bit 3 of the code is set (moved to the sign bit,
// which VBLENDVPS reads; the bits above the nibble are shifted out). Uses
// Y8 and I.
#define LOOKUP256(I, D) \
	VPERMPS   Y0, I, Y8; \
	VPERMPS   Y1, I, D; \
	VPSLLD    $28, I, I; \
	VBLENDVPS I, D, Y8, D

// CODES256(off, I) puts the eight codes of the 4 bytes at off(SI) in the
// low nibbles of I's dwords, element j in dword j: one broadcast and one
// shift by nibbleShift256 (Y10). Only VPERMPS uses a shuffle port, which
// bounds this loop on AMD cores, where the one-byte-per-code split with
// VPUNPCK and VPMOVZXBD it replaced doubled the shuffles.
#define CODES256(off, I) \
	VPBROADCASTD off(SI), I; \
	VPSRLVD      Y10, I, I

// DOTGROUP256 adds the products of the 32 codes at (SI), looked up in the
// block's tables (Y0, Y1), and the 32 floats at (DI) to the lanes in
// Y12..Y15, and moves SI and DI past them. Uses Y3..Y9; needs
// nibbleShift256 in Y10.
#define DOTGROUP256 \
	CODES256(0, Y3); \
	CODES256(4, Y4); \
	CODES256(8, Y5); \
	CODES256(12, Y6); \
	LOOKUP256(Y3, Y7); \
	VFMADD231PS (DI), Y7, Y12; \
	LOOKUP256(Y4, Y9); \
	VFMADD231PS 32(DI), Y9, Y13; \
	LOOKUP256(Y5, Y7); \
	VFMADD231PS 64(DI), Y7, Y14; \
	LOOKUP256(Y6, Y9); \
	VFMADD231PS 96(DI), Y9, Y15; \
	ADDQ    $16, SI; \
	ADDQ    $128, DI

// func decodeAVX2(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·decodeAVX2(SB), NOSPLIT, $0-48
	MOVQ    dst+0(FP), DI
	MOVQ    codes+8(FP), SI
	MOVQ    scales+16(FP), BX
	MOVQ    groups+24(FP), CX
	MOVQ    firstGroups+32(FP), DX
	MOVQ    blockGroups+40(FP), R8
	VMOVDQU nibbleShift256<>(SB), Y10

dec256block:
	NEWBLOCK256(dec256done)

dec256group:
	CODES256(0, Y3)
	CODES256(4, Y4)
	CODES256(8, Y5)
	CODES256(12, Y6)
	LOOKUP256(Y3, Y7)
	VMOVUPS Y7, (DI)
	LOOKUP256(Y4, Y9)
	VMOVUPS Y9, 32(DI)
	LOOKUP256(Y5, Y7)
	VMOVUPS Y7, 64(DI)
	LOOKUP256(Y6, Y9)
	VMOVUPS Y9, 96(DI)
	ADDQ    $16, SI
	ADDQ    $128, DI
	DECQ    DX
	JNZ     dec256group
	MOVQ    R8, DX
	JMP     dec256block

dec256done:
	VZEROUPPER
	RET

// dot1AVX2 keeps lanes 0..7, 8..15, 16..23 and 24..31 in Y12..Y15.
//
// func dot1AVX2(acc *[32]float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·dot1AVX2(SB), NOSPLIT, $0-56
	MOVQ    acc+0(FP), AX
	MOVQ    codes+8(FP), SI
	MOVQ    x+16(FP), DI
	MOVQ    scales+24(FP), BX
	MOVQ    groups+32(FP), CX
	MOVQ    firstGroups+40(FP), DX
	MOVQ    blockGroups+48(FP), R8
	VMOVDQU nibbleShift256<>(SB), Y10
	VMOVUPS (AX), Y12  // lanes 0..7
	VMOVUPS 32(AX), Y13 // lanes 8..15
	VMOVUPS 64(AX), Y14 // lanes 16..23
	VMOVUPS 96(AX), Y15 // lanes 24..31

dot1_256block:
	NEWBLOCK256(dot1_256done)

dot1_256group:
	DOTGROUP256
	DECQ    DX
	JNZ     dot1_256group
	MOVQ    R8, DX
	JMP     dot1_256block

dot1_256done:
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, 32(AX)
	VMOVUPS Y14, 64(AX)
	VMOVUPS Y15, 96(AX)
	VZEROUPPER
	RET

// FOLD512 folds the lanes that the whole-row kernels hold in element order
// (position p of Z8 (0..15) and Z9 (16..31) holds element p's lane, see
// kernels.go) in MulT's order into X8. In positions MulT's halving is
// p += p+16, then p += p+4 for p mod 8 < 4, p += p+2 for p mod 4 < 2,
// p += p+1 and last p += p+8: the same additions (a sum is the same either
// way round), in an order that is fixed for every level.
#define FOLD512 \
	VADDPS        Z9, Z8, Z8; \
	VEXTRACTF32X8 $1, Z8, Y10; \
	VEXTRACTF128  $1, Y8, X11; \
	VADDPS        X11, X8, X8; \
	VEXTRACTF128  $1, Y10, X11; \
	VADDPS        X11, X10, X10; \
	VMOVHLPS      X8, X8, X11; \
	VADDPS        X11, X8, X8; \
	VMOVHLPS      X10, X10, X11; \
	VADDPS        X11, X10, X10; \
	VMOVSHDUP     X8, X11; \
	VADDSS        X11, X8, X8; \
	VMOVSHDUP     X10, X11; \
	VADDSS        X11, X10, X10; \
	VADDSS        X10, X8, X8

// dotRowsAVX512 is dot1AVX512 over whole consecutive rows of W, rowGroups
// groups each, all multiplied by the same row of x: at the end of each row
// it folds the lanes into the next float of y and starts again at +0 and at
// the start of x. R11 counts the groups left in the row, R12 holds x.
//
// func dotRowsAVX512(y *float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups, rowGroups int)
TEXT ·dotRowsAVX512(SB), NOSPLIT, $0-64
	MOVQ      y+0(FP), AX
	MOVQ      codes+8(FP), SI
	MOVQ      x+16(FP), DI
	MOVQ      DI, R12
	MOVQ      scales+24(FP), BX
	MOVQ      groups+32(FP), CX
	MOVQ      firstGroups+40(FP), DX
	MOVQ      blockGroups+48(FP), R8
	MOVQ      rowGroups+56(FP), R11
	VMOVUPS   ·codebook(SB), Z7
	VMOVDQU32 spreadLo<>(SB), Z12
	VMOVDQU32 spreadHi<>(SB), Z13
	VMOVDQU32 nibbleShift<>(SB), Z14
	VXORPS    Z8, Z8, Z8
	VXORPS    Z9, Z9, Z9

rows512block:
	NEWBLOCK512(rows512done)

rows512group:
	DECODE512
	VFMADD231PS (DI), Z6, Z8
	VFMADD231PS 64(DI), Z4, Z9
	ADDQ   $16, SI
	ADDQ   $128, DI
	DECQ   R11
	JNZ    rows512next
	FOLD512
	VMOVSS X8, (AX)
	ADDQ   $4, AX
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	MOVQ   R12, DI
	MOVQ   rowGroups+56(FP), R11

rows512next:
	DECQ DX
	JNZ  rows512group
	MOVQ R8, DX
	JMP  rows512block

rows512done:
	VZEROUPPER
	RET

// FOLDSTORE(ZA, ZB, dst) folds the lanes of one row of x (ZA: 0..15, ZB:
// 16..31) through Z8, Z9 and stores the sum at dst.
#define FOLDSTORE(ZA, ZB, dst) \
	VMOVAPS ZA, Z8; \
	VMOVAPS ZB, Z9; \
	FOLD512; \
	VMOVSS  X8, dst

// dotRows4AVX512 is dotRowsAVX512 for four rows of x, xstride bytes apart,
// sharing each decoded weight; their sums go to y, y+ystride, y+2·ystride
// and y+3·ystride (bytes). Lanes as in dot4AVX512.
//
// func dotRows4AVX512(y *float32, codes *byte, x *float32, xstride, ystride int, scales *float32, groups, firstGroups, blockGroups, rowGroups int)
TEXT ·dotRows4AVX512(SB), NOSPLIT, $0-80
	MOVQ      y+0(FP), AX
	MOVQ      codes+8(FP), SI
	MOVQ      x+16(FP), DI
	MOVQ      DI, R12
	MOVQ      xstride+24(FP), R9
	LEAQ      (R9)(R9*2), R10
	MOVQ      ystride+32(FP), R13
	MOVQ      scales+40(FP), BX
	MOVQ      groups+48(FP), CX
	MOVQ      firstGroups+56(FP), DX
	MOVQ      blockGroups+64(FP), R8
	MOVQ      rowGroups+72(FP), R11
	VMOVUPS   ·codebook(SB), Z7
	VMOVDQU32 spreadLo<>(SB), Z12
	VMOVDQU32 spreadHi<>(SB), Z13
	VMOVDQU32 nibbleShift<>(SB), Z14
	VXORPS    Z20, Z20, Z20
	VXORPS    Z21, Z21, Z21
	VXORPS    Z22, Z22, Z22
	VXORPS    Z23, Z23, Z23
	VXORPS    Z24, Z24, Z24
	VXORPS    Z25, Z25, Z25
	VXORPS    Z26, Z26, Z26
	VXORPS    Z27, Z27, Z27

rows4_512block:
	NEWBLOCK512(rows4_512done)

rows4_512group:
	DECODE512
	MULADD512(0, Z6, Z20, Z22, Z24, Z26)
	MULADD512(64, Z4, Z21, Z23, Z25, Z27)
	ADDQ $16, SI
	ADDQ $128, DI
	DECQ R11
	JNZ  rows4_512next
	FOLDSTORE(Z20, Z21, (AX))
	FOLDSTORE(Z22, Z23, (AX)(R13*1))
	FOLDSTORE(Z24, Z25, (AX)(R13*2))
	ADDQ R13, AX
	FOLDSTORE(Z26, Z27, (AX)(R13*2))
	SUBQ R13, AX
	ADDQ $4, AX
	VXORPS Z20, Z20, Z20
	VXORPS Z21, Z21, Z21
	VXORPS Z22, Z22, Z22
	VXORPS Z23, Z23, Z23
	VXORPS Z24, Z24, Z24
	VXORPS Z25, Z25, Z25
	VXORPS Z26, Z26, Z26
	VXORPS Z27, Z27, Z27
	MOVQ R12, DI
	MOVQ rowGroups+72(FP), R11

rows4_512next:
	DECQ DX
	JNZ  rows4_512group
	MOVQ R8, DX
	JMP  rows4_512block

rows4_512done:
	VZEROUPPER
	RET

// FOLD256 folds the lanes in Y12..Y15 (positions 0..7, 8..15, 16..23,
// 24..31) in MulT's order into X12, as FOLD512 does. Uses X11.
#define FOLD256 \
	VADDPS       Y14, Y12, Y12; \
	VADDPS       Y15, Y13, Y13; \
	VEXTRACTF128 $1, Y12, X11; \
	VADDPS       X11, X12, X12; \
	VEXTRACTF128 $1, Y13, X11; \
	VADDPS       X11, X13, X13; \
	VMOVHLPS     X12, X12, X11; \
	VADDPS       X11, X12, X12; \
	VMOVHLPS     X13, X13, X11; \
	VADDPS       X11, X13, X13; \
	VMOVSHDUP    X12, X11; \
	VADDSS       X11, X12, X12; \
	VMOVSHDUP    X13, X11; \
	VADDSS       X11, X13, X13; \
	VADDSS       X13, X12, X12

// dotRowsAVX2 is dotRowsAVX512 with AVX2 (lanes as in dot1AVX2).
//
// func dotRowsAVX2(y *float32, codes *byte, x *float32, scales *float32, groups, firstGroups, blockGroups, rowGroups int)
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-64
	MOVQ    y+0(FP), AX
	MOVQ    codes+8(FP), SI
	MOVQ    x+16(FP), DI
	MOVQ    DI, R12
	MOVQ    scales+24(FP), BX
	MOVQ    groups+32(FP), CX
	MOVQ    firstGroups+40(FP), DX
	MOVQ    blockGroups+48(FP), R8
	MOVQ    rowGroups+56(FP), R11
	VMOVDQU nibbleShift256<>(SB), Y10
	VXORPS  Y12, Y12, Y12
	VXORPS  Y13, Y13, Y13
	VXORPS  Y14, Y14, Y14
	VXORPS  Y15, Y15, Y15

rows256block:
	NEWBLOCK256(rows256done)

rows256group:
	DOTGROUP256
	DECQ    R11
	JNZ     rows256next
	FOLD256
	VMOVSS  X12, (AX)
	ADDQ    $4, AX
	VXORPS  Y12, Y12, Y12
	VXORPS  Y13, Y13, Y13
	VXORPS  Y14, Y14, Y14
	VXORPS  Y15, Y15, Y15
	MOVQ    R12, DI
	MOVQ    rowGroups+56(FP), R11

rows256next:
	DECQ DX
	JNZ  rows256group
	MOVQ R8, DX
	JMP  rows256block

rows256done:
	VZEROUPPER
	RET

// func scalesAVX512(out *float32, codes *uint8, n int, table *[256]float32, nested, offset float32)
// 16 double-quantized scales per step: the codes widened to dword indices,
// looked up in the 256-entry table held in Z16–Z31 (eight VPERMI2PS over
// 32-entry pairs, each masked to the lanes whose top three code bits select
// its pair, so that the indices of the other lanes stay for the later
// pairs; faster than a gather on AMD cores), then the product with nested
// and the sum with offset, each rounded like the Go code's.
#define SCALEPAIR(i, lo, hi) \
	VPCMPEQD.BCST scalePair<>+(4*i)(SB), Z2, K1 \
	VPERMI2PS     hi, lo, K1, Z1

TEXT ·scalesAVX512(SB), NOSPLIT, $0-40
	MOVQ         out+0(FP), DI
	MOVQ         codes+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVQ         table+24(FP), DX
	VBROADCASTSS nested+32(FP), Z4
	VBROADCASTSS offset+36(FP), Z5
	VMOVUPS      (DX), Z16
	VMOVUPS      64(DX), Z17
	VMOVUPS      128(DX), Z18
	VMOVUPS      192(DX), Z19
	VMOVUPS      256(DX), Z20
	VMOVUPS      320(DX), Z21
	VMOVUPS      384(DX), Z22
	VMOVUPS      448(DX), Z23
	VMOVUPS      512(DX), Z24
	VMOVUPS      576(DX), Z25
	VMOVUPS      640(DX), Z26
	VMOVUPS      704(DX), Z27
	VMOVUPS      768(DX), Z28
	VMOVUPS      832(DX), Z29
	VMOVUPS      896(DX), Z30
	VMOVUPS      960(DX), Z31

scales512:
	VPMOVZXBD (SI), Z1
	VPSRLD    $5, Z1, Z2
	SCALEPAIR(0, Z16, Z17)
	SCALEPAIR(1, Z18, Z19)
	SCALEPAIR(2, Z20, Z21)
	SCALEPAIR(3, Z22, Z23)
	SCALEPAIR(4, Z24, Z25)
	SCALEPAIR(5, Z26, Z27)
	SCALEPAIR(6, Z28, Z29)
	SCALEPAIR(7, Z30, Z31)
	VMULPS    Z4, Z1, Z0
	VADDPS    Z5, Z0, Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $16, SI
	ADDQ      $64, DI
	SUBQ      $16, CX
	JNZ       scales512
	VZEROUPPER
	RET

// decodeVBMI needs AVX-512 VBMI as well: VPMULTISHIFTQB gives every
// dword of a register the bits of one code at once. It reads the 8 code
// bytes of 16 elements, broadcast to every qword, and copies into byte 0 of
// dword 2i the byte at bit offset 8i+4 (the high nibble of byte i: element
// 2i) and into byte 0 of dword 2i+1 the byte at bit offset 8i (element
// 2i+1). VPERMPS reads only the low 4 bits of each index, so the elements
// come out in order with no shift, mask or shuffle.
DATA nibbleSelect<>+0(SB)/8, $0x0000000000000004
DATA nibbleSelect<>+8(SB)/8, $0x000000080000000c
DATA nibbleSelect<>+16(SB)/8, $0x0000001000000014
DATA nibbleSelect<>+24(SB)/8, $0x000000180000001c
DATA nibbleSelect<>+32(SB)/8, $0x0000002000000024
DATA nibbleSelect<>+40(SB)/8, $0x000000280000002c
DATA nibbleSelect<>+48(SB)/8, $0x0000003000000034
DATA nibbleSelect<>+56(SB)/8, $0x000000380000003c
GLOBL nibbleSelect<>(SB), RODATA|NOPTR, $64

// laneFirsts gathers dword 0 of each 128-bit lane into dwords 0..3.
DATA laneFirsts<>+0(SB)/4, $0
DATA laneFirsts<>+4(SB)/4, $4
DATA laneFirsts<>+8(SB)/4, $8
DATA laneFirsts<>+12(SB)/4, $12
GLOBL laneFirsts<>(SB), RODATA|NOPTR, $16

// DECODEVBMI(lo, hi, ZT, ZA, ZB) looks the 32 codes at lo (their first 8
// bytes) and hi (the last 8) up in the table ZT: elements 0..15 into ZA,
// 16..31 into ZB. Needs nibbleSelect in Z3.
#define DECODEVBMI(lo, hi, ZT, ZA, ZB) \
	VPMULTISHIFTQB.BCST lo, Z3, ZA; \
	VPMULTISHIFTQB.BCST hi, Z3, ZB; \
	VPERMPS ZT, ZA, ZA; \
	VPERMPS ZT, ZB, ZB

// func decodeVBMI(dst *float32, codes *byte, scales *float32, groups, firstGroups, blockGroups int)
TEXT ·decodeVBMI(SB), NOSPLIT, $0-48
	MOVQ      dst+0(FP), DI
	MOVQ      codes+8(FP), SI
	MOVQ      scales+16(FP), BX
	MOVQ      groups+24(FP), CX
	MOVQ      firstGroups+32(FP), DX
	MOVQ      blockGroups+40(FP), R8
	VMOVUPS   ·codebook(SB), Z7
	VMOVDQU64 nibbleSelect<>(SB), Z3

decvblock:
	NEWBLOCK512(decvdone)

decvgroup:
	DECODEVBMI((SI), 8(SI), Z0, Z4, Z5)
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
	ADDQ    $16, SI
	ADDQ    $128, DI
	DECQ    DX
	JNZ     decvgroup
	MOVQ    R8, DX
	JMP     decvblock

decvdone:
	VZEROUPPER
	RET

// matVec4AVX512 adds in MulT's lanes (see kernels.go) rather than in element
// order: lane l of each 16-lane half of a group holds nibble l/2 (from the
// bottom) of dword l mod 2 of the half's 8 code bytes, so that a broadcast
// load of the 8 bytes and one VPSRLVD by laneShift bring every lane's code
// to its low 4 bits, the only ones VPERMPS reads. That takes no shuffle,
// which on AMD cores competes with VPERMPS for the same pipes; x is
// permuted into the same order (laneElements) once per group for four rows.
// It needs AVX-512F alone.
DATA laneShift<>+0(SB)/4, $0
DATA laneShift<>+4(SB)/4, $0
DATA laneShift<>+8(SB)/4, $4
DATA laneShift<>+12(SB)/4, $4
DATA laneShift<>+16(SB)/4, $8
DATA laneShift<>+20(SB)/4, $8
DATA laneShift<>+24(SB)/4, $12
DATA laneShift<>+28(SB)/4, $12
DATA laneShift<>+32(SB)/4, $16
DATA laneShift<>+36(SB)/4, $16
DATA laneShift<>+40(SB)/4, $20
DATA laneShift<>+44(SB)/4, $20
DATA laneShift<>+48(SB)/4, $24
DATA laneShift<>+52(SB)/4, $24
DATA laneShift<>+56(SB)/4, $28
DATA laneShift<>+60(SB)/4, $28
GLOBL laneShift<>(SB), RODATA|NOPTR, $64

// laneElements holds the element of each lane of a 16-lane half, the
// laneElements of kernels.go.
DATA laneElements<>+0(SB)/4, $1
DATA laneElements<>+4(SB)/4, $9
DATA laneElements<>+8(SB)/4, $0
DATA laneElements<>+12(SB)/4, $8
DATA laneElements<>+16(SB)/4, $3
DATA laneElements<>+20(SB)/4, $11
DATA laneElements<>+24(SB)/4, $2
DATA laneElements<>+28(SB)/4, $10
DATA laneElements<>+32(SB)/4, $5
DATA laneElements<>+36(SB)/4, $13
DATA laneElements<>+40(SB)/4, $4
DATA laneElements<>+44(SB)/4, $12
DATA laneElements<>+48(SB)/4, $7
DATA laneElements<>+52(SB)/4, $15
DATA laneElements<>+56(SB)/4, $6
DATA laneElements<>+60(SB)/4, $14
GLOBL laneElements<>(SB), RODATA|NOPTR, $64

// LANES512(lo, hi, ZS, ZT, ZA, ZB) looks the 32 codes of a group, whose
// first 8 bytes are at lo and last 8 at hi, up in the table ZT in lane
// order: lanes 0..15 into ZA, 16..31 into ZB. Needs laneShift in ZS.
#define LANES512(lo, hi, ZS, ZT, ZA, ZB) \
	VPBROADCASTQ lo, ZA; \
	VPBROADCASTQ hi, ZB; \
	VPSRLVD      ZS, ZA, ZA; \
	VPSRLVD      ZS, ZB, ZB; \
	VPERMPS      ZT, ZA, ZA; \
	VPERMPS      ZT, ZB, ZB

// ROWTABLE(rowGroup, ZT) sets ZT to the codebook times the scale of the
// block holding flat group rowGroup (a register; clobbered): scales[rowGroup
// >> CX]. Needs the codebook in Z2, scales in BX. The shifts take their
// count in CL rather than use BMI2's SHRX, which no level checks for.
#define ROWTABLE(rowGroup, ZT) \
	SHRQ CX, rowGroup; \
	VMULPS.BCST (BX)(rowGroup*4), Z2, ZT

// ROWDOT(lo, hi, ZT, A, B, T0, T1) adds the products of the 32 codes at lo
// and hi (as in LANES512), looked up in ZT, with x in lane order (Z0, Z1)
// to the lanes A (0..15) and B (16..31).
#define ROWDOT(lo, hi, ZT, A, B, T0, T1) \
	LANES512(lo, hi, Z3, ZT, T0, T1); \
	VFMADD231PS Z0, T0, A; \
	VFMADD231PS Z1, T1, B

// matVec4AVX512 multiplies one row x of rowGroups·32 floats by batches·4
// consecutive whole rows of W, four at a time, each row's lanes from +0 and
// folded in MulT's order, writing one float of y per row. The codes start
// at a row boundary; flat group f of W (counted from the call's first group
// plus firstGroup) takes its scale from scales[f >> groupShift].
//
// Registers: AX y, SI codes of the batch's first row, R9 and R10 one and
// three rows of codes in bytes, DI x, R8 groups left in the row, R11 the
// first row's flat group, R12 and R13 one and three rows in groups, CX
// groupShift, R14 the groups per block less one, BX scales, R15 the
// prefetch pointer. Lanes of row q: Z(8+2q) (0..15) and Z(9+2q) (16..31);
// tables Z4..Z7; laneShift Z3, laneElements Z24.
//
// func matVec4AVX512(y *float32, codes *byte, x *float32, scales *float32, batches, rowGroups, firstGroup, groupShift int)
TEXT ·matVec4AVX512(SB), NOSPLIT, $0-64
	MOVQ      y+0(FP), AX
	MOVQ      codes+8(FP), SI
	MOVQ      scales+24(FP), BX
	MOVQ      rowGroups+40(FP), R12
	LEAQ      (R12)(R12*2), R13
	MOVQ      R12, R9
	SHLQ      $4, R9
	LEAQ      (R9)(R9*2), R10
	MOVQ      firstGroup+48(FP), R11
	MOVQ      groupShift+56(FP), CX
	MOVQ      $1, R14
	SHLQ      CX, R14
	DECQ      R14
	VMOVUPS   ·codebook(SB), Z2
	VMOVDQU32 laneShift<>(SB), Z3
	VMOVDQU32 laneElements<>(SB), Z24
	// A batch's codes are one run of 64 bytes a group, so R15 walks that
	// run a line a group, one batch plus codesAhead bytes ahead.
	LEAQ      codesAhead(SI)(R9*4), R15

mv4batch:
	MOVQ   x+16(FP), DI
	MOVQ   R12, R8
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15

	// Every row's first table; the others when a row enters a block.
	MOVQ R11, DX
	ROWTABLE(DX, Z4)
	LEAQ (R11)(R12*1), DX
	ROWTABLE(DX, Z5)
	LEAQ (R11)(R12*2), DX
	ROWTABLE(DX, Z6)
	LEAQ (R11)(R13*1), DX
	ROWTABLE(DX, Z7)

mv4group:
	PREFETCHT0 (R15)
	ADDQ    $64, R15
	VPERMPS (DI), Z24, Z0
	VPERMPS 64(DI), Z24, Z1
	ROWDOT((SI), 8(SI), Z4, Z8, Z9, Z16, Z17)
	ROWDOT((SI)(R9*1), 8(SI)(R9*1), Z5, Z10, Z11, Z18, Z19)
	ROWDOT((SI)(R9*2), 8(SI)(R9*2), Z6, Z12, Z13, Z20, Z21)
	ROWDOT((SI)(R10*1), 8(SI)(R10*1), Z7, Z14, Z15, Z22, Z23)
	ADDQ    $16, SI
	ADDQ    $128, DI
	INCQ    R11
	DECQ    R8
	JZ      mv4fold
	TESTQ   R14, R11
	JNZ     mv4row1
	MOVQ    R11, DX
	ROWTABLE(DX, Z4)

mv4row1:
	LEAQ  (R11)(R12*1), DX
	TESTQ R14, DX
	JNZ   mv4row2
	ROWTABLE(DX, Z5)

mv4row2:
	LEAQ  (R11)(R12*2), DX
	TESTQ R14, DX
	JNZ   mv4row3
	ROWTABLE(DX, Z6)

mv4row3:
	LEAQ  (R11)(R13*1), DX
	TESTQ R14, DX
	JNZ   mv4group
	ROWTABLE(DX, Z7)
	JMP   mv4group

mv4fold:
	// Fold the four rows together: lane j += j+16 (in each row's pair),
	// then j += j+8 with rows 0, 1 and 2, 3 in one register, j += j+4 with
	// each row in one 128-bit lane, j += j+2 and j += j+1 in place.
	VADDPS     Z9, Z8, Z8
	VADDPS     Z11, Z10, Z10
	VADDPS     Z13, Z12, Z12
	VADDPS     Z15, Z14, Z14
	VSHUFF32X4 $0x44, Z10, Z8, Z16
	VSHUFF32X4 $0xee, Z10, Z8, Z17
	VADDPS     Z17, Z16, Z16
	VSHUFF32X4 $0x44, Z14, Z12, Z18
	VSHUFF32X4 $0xee, Z14, Z12, Z19
	VADDPS     Z19, Z18, Z18
	VSHUFF32X4 $0x88, Z18, Z16, Z20
	VSHUFF32X4 $0xdd, Z18, Z16, Z21
	VADDPS     Z21, Z20, Z20
	VPERMILPS  $0x4e, Z20, Z21
	VADDPS     Z21, Z20, Z20
	VMOVSHDUP  Z20, Z21
	VADDPS     Z21, Z20, Z20
	VMOVDQU32  laneFirsts<>(SB), X22
	VPERMPS    Z20, Z22, Z22
	VMOVUPS    X22, (AX)
	ADDQ       $16, AX
	ADDQ       R10, SI
	ADDQ       R13, R11
	DECQ       batches+32(FP)
	JNZ        mv4batch
	VZEROUPPER
	RET

// scalesVBMI is scalesAVX512 for n a multiple of 64, with AVX-512 VBMI and
// the code table split into byte planes (planes[p][c] is byte p of
// table[c]): 64 codes per step, each plane looked up with two VPERMI2B
// (codes below 128, codes from 128) and a blend on the codes' top bit, the
// planes then interleaved into dwords. The interleaving works within
// 128-bit lanes, so the codes are first put in the order scaleOrder, which
// makes the dwords come out in the codes' order. A quarter of the shuffles
// of scalesAVX512 per scale.
DATA scaleOrder<>+0(SB)/8, $0x1312111003020100
DATA scaleOrder<>+8(SB)/8, $0x3332313023222120
DATA scaleOrder<>+16(SB)/8, $0x1716151407060504
DATA scaleOrder<>+24(SB)/8, $0x3736353427262524
DATA scaleOrder<>+32(SB)/8, $0x1b1a19180b0a0908
DATA scaleOrder<>+40(SB)/8, $0x3b3a39382b2a2928
DATA scaleOrder<>+48(SB)/8, $0x1f1e1d1c0f0e0d0c
DATA scaleOrder<>+56(SB)/8, $0x3f3e3d3c2f2e2d2c
GLOBL scaleOrder<>(SB), RODATA|NOPTR, $64

// SCALEPLANE(t0, t1, t2, t3, out) looks the codes in Z0 (top bits in K1) up
// in the plane held in t0..t3 (entries 0..63, …, 192..255) into out. Uses
// Z1, Z2.
#define SCALEPLANE(t0, t1, t2, t3, out) \
	VMOVDQA64 Z0, Z1; \
	VPERMI2B  t1, t0, Z1; \
	VMOVDQA64 Z0, Z2; \
	VPERMI2B  t3, t2, Z2; \
	VPBLENDMB Z2, Z1, K1, out

// func scalesVBMI(out *float32, codes *uint8, n int, planes *[4][256]byte, nested, offset float32)
TEXT ·scalesVBMI(SB), NOSPLIT, $0-40
	MOVQ         out+0(FP), DI
	MOVQ         codes+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVQ         planes+24(FP), DX
	VBROADCASTSS nested+32(FP), Z14
	VBROADCASTSS offset+36(FP), Z15
	VMOVDQU64    scaleOrder<>(SB), Z13
	VMOVDQU64    (DX), Z16
	VMOVDQU64    64(DX), Z17
	VMOVDQU64    128(DX), Z18
	VMOVDQU64    192(DX), Z19
	VMOVDQU64    256(DX), Z20
	VMOVDQU64    320(DX), Z21
	VMOVDQU64    384(DX), Z22
	VMOVDQU64    448(DX), Z23
	VMOVDQU64    512(DX), Z24
	VMOVDQU64    576(DX), Z25
	VMOVDQU64    640(DX), Z26
	VMOVDQU64    704(DX), Z27
	VMOVDQU64    768(DX), Z28
	VMOVDQU64    832(DX), Z29
	VMOVDQU64    896(DX), Z30
	VMOVDQU64    960(DX), Z31

scalesv:
	VMOVDQU64  (SI), Z0
	VPERMB     Z0, Z13, Z0
	VPMOVB2M   Z0, K1
	SCALEPLANE(Z16, Z17, Z18, Z19, Z4)
	SCALEPLANE(Z20, Z21, Z22, Z23, Z5)
	SCALEPLANE(Z24, Z25, Z26, Z27, Z6)
	SCALEPLANE(Z28, Z29, Z30, Z31, Z7)
	VPUNPCKLBW Z5, Z4, Z8
	VPUNPCKHBW Z5, Z4, Z9
	VPUNPCKLBW Z7, Z6, Z10
	VPUNPCKHBW Z7, Z6, Z11
	VPUNPCKLWD Z10, Z8, Z4
	VPUNPCKHWD Z10, Z8, Z5
	VPUNPCKLWD Z11, Z9, Z6
	VPUNPCKHWD Z11, Z9, Z7
	VMULPS     Z14, Z4, Z4
	VMULPS     Z14, Z5, Z5
	VMULPS     Z14, Z6, Z6
	VMULPS     Z14, Z7, Z7
	VADDPS     Z15, Z4, Z4
	VADDPS     Z15, Z5, Z5
	VADDPS     Z15, Z6, Z6
	VADDPS     Z15, Z7, Z7
	VMOVUPS    Z4, (DI)
	VMOVUPS    Z5, 64(DI)
	VMOVUPS    Z6, 128(DI)
	VMOVUPS    Z7, 192(DI)
	ADDQ       $64, SI
	ADDQ       $256, DI
	SUBQ       $64, CX
	JNZ        scalesv
	VZEROUPPER
	RET
