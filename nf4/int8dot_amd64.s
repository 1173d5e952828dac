// Int8 products of NF4 rows with an Int8Vector (int8dot.go has the order
// the lanes follow, int8dot_amd64.go the calling convention). A step is 64
// columns: 32 bytes of codes, whose low nibbles (the odd columns) pair with
// the vector's first 32 codes and whose high nibbles (the even columns)
// with its next 32. Codes become int8 levels by VPSHUFB over a 16-byte
// table. The vector's codes, lane biases and lane scales are at the same
// offset from three bases: the kernels walk the codes with one pointer and
// reach the other two through the base differences.

#include "textflag.h"

// int8Nibbles masks each byte to its low 4 bits.
DATA int8Nibbles<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+32(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+40(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+48(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA int8Nibbles<>+56(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL int8Nibbles<>(SB), RODATA|NOPTR, $64

// int8Ones16 is sixteen int16 ones: VPMADDWD by it adds pairs of int16.
DATA int8Ones16<>+0(SB)/8, $0x0001000100010001
DATA int8Ones16<>+8(SB)/8, $0x0001000100010001
DATA int8Ones16<>+16(SB)/8, $0x0001000100010001
DATA int8Ones16<>+24(SB)/8, $0x0001000100010001
GLOBL int8Ones16<>(SB), RODATA|NOPTR, $32

// STEP512(codes, wscale, acc, yt, zt, yu, zu) adds one step of one row to
// the lanes acc: the levels of the 32 bytes at codes, biased (low nibbles
// in bytes 0–31, high nibbles in bytes 32–63; Z30 holds the table in each
// 128-bit lane, Z31 the nibble mask), dotted with the vector codes at (R8)
// from the lane biases in Z8, scaled by the lane scales in Z9, then by the
// row's block absmax at wscale. zt and zu (yt, yu their low halves) are
// scratch.
#define STEP512(codes, wscale, acc, yt, zt, yu, zu) \
	VMOVDQU64    codes, yt      \
	VPSRLW       $4, yt, yu     \
	VINSERTI64X4 $1, yu, zt, zt \
	VPANDD       Z31, zt, zt    \
	VPSHUFB      zt, Z30, zt    \
	VMOVDQA32    Z8, zu         \
	VPDPBUSD     (R8), zt, zu   \
	VCVTDQ2PS    zu, zu         \
	VMULPS       Z9, zu, zu     \
	VMULPS.BCST  wscale, zu, zu \
	VADDPS       zu, acc, acc

// FOLD16(z, y, x) leaves lane 0 + … + lane 15 of z in x (y its low half),
// folded in halves (j+8, j+4, j+2, j+1) as int8Fold does; it uses Z10.
#define FOLD16(z, y, x) \
	VEXTRACTF64X4 $1, z, Y10 \
	VADDPS        Y10, y, y  \
	VEXTRACTF128  $1, y, X10 \
	VADDPS        X10, x, x  \
	VMOVHLPS      x, x, X10  \
	VADDPS        X10, x, x  \
	VMOVSHDUP     x, X10     \
	VADDSS        X10, x, x

// func int8Rows4VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, steps, perBlock, rowBytes, scaleBytes int)
//
// rows (a positive multiple of 4) consecutive rows of rowBytes bytes of
// codes (steps steps each); wscale holds each row's block absmax values,
// row after row, scaleBytes bytes apart; perBlock steps share one.
TEXT ·int8Rows4VNNI(SB), NOSPLIT, $0-96
	MOVQ y+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ q+16(FP), R8
	MOVQ bias+24(FP), R9
	SUBQ R8, R9
	MOVQ xscale+32(FP), R10
	SUBQ R8, R10
	MOVQ wscale+40(FP), AX
	MOVQ lut+48(FP), R11
	VBROADCASTI32X4 (R11), Z30
	VMOVDQU64 int8Nibbles<>(SB), Z31
	MOVQ rows+56(FP), CX
	MOVQ rowBytes+80(FP), DX
	MOVQ scaleBytes+88(FP), R14
	LEAQ (SI)(DX*2), R13
	ADDQ DX, R13
	LEAQ (AX)(R14*2), R12
	ADDQ R14, R12

rows4:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ   steps+64(FP), R11

block4:
	MOVQ perBlock+72(FP), BX

step4:
	VMOVDQU32 (R8)(R9*1), Z8
	VMOVDQU32 (R8)(R10*1), Z9
	STEP512((SI), (AX), Z0, Y10, Z10, Y11, Z11)
	STEP512((SI)(DX*1), (AX)(R14*1), Z1, Y12, Z12, Y13, Z13)
	STEP512((SI)(DX*2), (AX)(R14*2), Z2, Y14, Z14, Y15, Z15)
	STEP512((R13), (R12), Z3, Y4, Z4, Y5, Z5)
	ADDQ $32, SI
	ADDQ $32, R13
	ADDQ $64, R8
	DECQ R11
	JZ   rowsdone4
	DECQ BX
	JNZ  step4
	ADDQ $4, AX
	ADDQ $4, R12
	JMP  block4

rowsdone4:
	FOLD16(Z0, Y0, X0)
	FOLD16(Z1, Y1, X1)
	FOLD16(Z2, Y2, X2)
	FOLD16(Z3, Y3, X3)
	VMOVSS X0, (DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	ADDQ   $16, DI
	// SI and R13 have moved one row on, AX and R12 one block short of
	// one row: on to the next four rows.
	LEAQ (SI)(DX*2), SI
	ADDQ DX, SI
	LEAQ (R13)(DX*2), R13
	ADDQ DX, R13
	ADDQ $4, AX
	ADDQ $4, R12
	LEAQ (AX)(R14*2), AX
	ADDQ R14, AX
	LEAQ (R12)(R14*2), R12
	ADDQ R14, R12
	// Back to the start of the vector: steps·64 bytes = 2·rowBytes.
	SUBQ DX, R8
	SUBQ DX, R8
	SUBQ $4, CX
	JNZ  rows4
	VZEROUPPER
	RET

// func int8Rows1VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, steps, perBlock, rowBytes, scaleBytes int)
//
// int8Rows4VNNI one row at a time, for any positive rows.
TEXT ·int8Rows1VNNI(SB), NOSPLIT, $0-96
	MOVQ y+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ q+16(FP), R8
	MOVQ bias+24(FP), R9
	SUBQ R8, R9
	MOVQ xscale+32(FP), R10
	SUBQ R8, R10
	MOVQ wscale+40(FP), AX
	MOVQ lut+48(FP), R11
	VBROADCASTI32X4 (R11), Z30
	VMOVDQU64 int8Nibbles<>(SB), Z31
	MOVQ rows+56(FP), CX
	MOVQ rowBytes+80(FP), DX

rows1:
	VXORPS Z0, Z0, Z0
	MOVQ   steps+64(FP), R11

block1:
	MOVQ perBlock+72(FP), BX

step1:
	VMOVDQU32 (R8)(R9*1), Z8
	VMOVDQU32 (R8)(R10*1), Z9
	STEP512((SI), (AX), Z0, Y10, Z10, Y11, Z11)
	ADDQ $32, SI
	ADDQ $64, R8
	DECQ R11
	JZ   rowdone1
	DECQ BX
	JNZ  step1
	ADDQ $4, AX
	JMP  block1

rowdone1:
	FOLD16(Z0, Y0, X0)
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	ADDQ   $4, AX
	SUBQ   DX, R8
	SUBQ   DX, R8
	DECQ   CX
	JNZ    rows1
	VZEROUPPER
	RET

// func int8RowsAVX2(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]int8, rows, steps, perBlock, rowBytes, scaleBytes int)
//
// int8Rows1VNNI with AVX2: the levels are signed (lut holds int8Codebook,
// bias is not read), and each byte product comes from VPMADDUBSW of |level|
// with the vector code carrying the level's sign; VPMADDWD by ones adds
// the int16 pairs into the same int32 lanes as VPDPBUSD. |level|·|code| ≤
// 127·127, so the int16 pair sums cannot saturate. Lanes 0–7 are in Y0,
// 8–15 in Y1.
TEXT ·int8RowsAVX2(SB), NOSPLIT, $0-96
	MOVQ y+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ q+16(FP), R8
	MOVQ xscale+32(FP), R10
	SUBQ R8, R10
	MOVQ wscale+40(FP), AX
	MOVQ lut+48(FP), R11
	VBROADCASTI128 (R11), Y14
	VMOVDQU int8Nibbles<>(SB), Y15
	VMOVDQU int8Ones16<>(SB), Y13
	MOVQ rows+56(FP), CX
	MOVQ rowBytes+80(FP), DX

rows2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ   steps+64(FP), R11

block2:
	MOVQ perBlock+72(FP), BX
	VBROADCASTSS (AX), Y12

step2:
	VMOVDQU    (SI), Y4
	VPSRLW     $4, Y4, Y5
	VPAND      Y15, Y4, Y4
	VPAND      Y15, Y5, Y5
	VPSHUFB    Y4, Y14, Y4
	VPSHUFB    Y5, Y14, Y5
	VMOVDQU    (R8), Y6
	VMOVDQU    32(R8), Y7
	VPSIGNB    Y4, Y6, Y6
	VPSIGNB    Y5, Y7, Y7
	VPABSB     Y4, Y4
	VPABSB     Y5, Y5
	VPMADDUBSW Y6, Y4, Y6
	VPMADDUBSW Y7, Y5, Y7
	VPMADDWD   Y13, Y6, Y6
	VPMADDWD   Y13, Y7, Y7
	VCVTDQ2PS  Y6, Y6
	VCVTDQ2PS  Y7, Y7
	VMULPS     (R8)(R10*1), Y6, Y6
	VMULPS     32(R8)(R10*1), Y7, Y7
	VMULPS     Y12, Y6, Y6
	VMULPS     Y12, Y7, Y7
	VADDPS     Y6, Y0, Y0
	VADDPS     Y7, Y1, Y1
	ADDQ       $32, SI
	ADDQ       $64, R8
	DECQ       R11
	JZ         rowdone2
	DECQ       BX
	JNZ        step2
	ADDQ       $4, AX
	JMP        block2

rowdone2:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	ADDQ         $4, AX
	SUBQ         DX, R8
	SUBQ         DX, R8
	DECQ         CX
	JNZ          rows2
	VZEROUPPER
	RET
