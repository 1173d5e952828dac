// Int8 products of NF4 rows with an Int8Vector (int8dot.go has the order
// the lanes follow, int8dot_amd64.go the calling convention). A step is 64
// columns: 32 bytes of codes, whose low nibbles (the odd columns) pair with
// the vector's odd codes and whose high nibbles (the even columns) with its
// even ones; the kernels take two steps (a pair, 128 columns) at a time.
// Codes become int8 levels by VPSHUFB over a 16-byte table. R12 walks the
// vector: 64 bytes of lane biases and of lane scales per pair, 128 bytes of
// codes.

#include "textflag.h"
#include "int8_amd64.h"
#include "ahead_amd64.h"

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

// LEVELS512(zt, zu) turns the codes' low nibbles in zt and high nibbles in
// zu (each byte's other bits any) into their biased levels: Z31 masks the
// nibbles, VPSHUFB looks them up in Z30, the table in each 128-bit lane.
#define LEVELS512(zt, zu) \
	VPANDD  Z31, zt, zt \
	VPANDD  Z31, zu, zu \
	VPSHUFB zt, Z30, zt \
	VPSHUFB zu, Z30, zu

// LEVELSVBMI is LEVELS512 with AVX-512 VBMI: VPERMB looks a code up in the
// 64 bytes of Z30 (the table four times) by the byte's low 6 bits, so the
// nibbles need no mask: bits 4 and 5 only pick a copy of the table.
#define LEVELSVBMI(zt, zu) \
	VPERMB Z30, zt, zt \
	VPERMB Z30, zu, zu

// LANES(LEVELS, zt, zu, zi) turns the codes loaded in zt into the lanes zi
// of their product: their levels, biased (low nibbles in zt, high nibbles
// in zu, looked up by LEVELS512 or LEVELSVBMI), dotted with the vector's
// odd and even codes at (R8)(R12*2) and 64(R8)(R12*2) from the lane biases
// in Z8, scaled by the lane scales in Z9.
#define LANES(LEVELS, zt, zu, zi) \
	VPSRLW    $4, zt, zu             \
	LEVELS(zt, zu)                   \
	VMOVDQA32 Z8, zi                 \
	VPDPBUSD  (R8)(R12*2), zt, zi    \
	VPDPBUSD  64(R8)(R12*2), zu, zi  \
	VCVTDQ2PS zi, zi                 \
	VMULPS    Z9, zi, zi

// PAIR(LEVELS, codes, sc0, sc1, acc, zt, zu, zi) adds one pair of steps of
// one row to the lanes acc: the LANES of the 64 bytes at codes, lanes 0–7
// (K1) scaled by the row's first step's block absmax at sc0 and lanes 8–15
// (K2) by the second's at sc1.
#define PAIR(LEVELS, codes, sc0, sc1, acc, zt, zu, zi) \
	VMOVDQU64   codes, zt                  \
	LANES(LEVELS, zt, zu, zi)              \
	VMULPS.BCST sc0, zi, K1, zi            \
	VMULPS.BCST sc1, zi, K2, zi            \
	VADDPS      zi, acc, acc

// HALF is PAIR for a last step without a partner: 32 bytes of codes (the
// upper half of zt and zu zero: levels times zero codes, bias zero), all
// lanes scaled by the step's block absmax at sc.
#define HALF(LEVELS, codes, sc, acc, yt, zt, zu, zi) \
	VMOVDQU64   codes, yt                  \
	LANES(LEVELS, zt, zu, zi)              \
	VMULPS.BCST sc, zi, zi                 \
	VADDPS      zi, acc, acc

// SETUP512 loads the arguments common to the VNNI kernels: y in DI, codes
// in SI, the vector's codes, biases and scales in R8, R9, R10, the block
// scales in AX, the table in Z30, the nibble mask in Z31, the lane masks in
// K1 (lanes 0–7) and K2 (8–15), rowBytes in DX and scaleBytes in R14.
#define SETUP512 \
	MOVQ            y+0(FP), DI             \
	MOVQ            codes+8(FP), SI         \
	MOVQ            q+16(FP), R8            \
	MOVQ            bias+24(FP), R9         \
	MOVQ            xscale+32(FP), R10      \
	MOVQ            wscale+40(FP), AX       \
	MOVQ            lut+48(FP), R11         \
	VBROADCASTI32X4 (R11), Z30              \
	VMOVDQU64       int8Nibbles<>(SB), Z31  \
	MOVQ            $0x00ff, R11            \
	KMOVW           R11, K1                 \
	MOVQ            $0xff00, R11            \
	KMOVW           R11, K2                 \
	MOVQ            rowBytes+80(FP), DX     \
	MOVQ            scaleBytes+88(FP), R14

// ROWS4(LEVELS) is the body of int8Rows4VNNI and int8Rows4VBMI, which
// differ only in how the levels are looked up (LEVELS512 or LEVELSVBMI). The four rows' codes are
// one run of memory, read 64 bytes of each row at a time: no stream a
// hardware prefetcher follows far ahead, so R15 walks the same run
// codesAhead bytes ahead, four lines a pair. At each four rows it
// prefetches the block scales of the four rows sixteen rows on, one run
// too (SCALESAHEAD).
#define ROWS4(LEVELS) \
	SETUP512                                                   \
	MOVQ rows+56(FP), BX                                       \
	ROW3                                                       \
	LEAQ codesAhead(SI), R15                                    \
rows4:                                                             \
	SCALESAHEAD(scales4)                                       \
	VXORPS     Z0, Z0, Z0                                      \
	VXORPS     Z1, Z1, Z1                                      \
	VXORPS     Z2, Z2, Z2                                      \
	VXORPS     Z3, Z3, Z3                                      \
	XORQ       R12, R12                                        \
	MOVQ       pairs+64(FP), R11                               \
	TESTQ      R11, R11                                        \
	JZ         last4                                           \
pair4:                                                             \
	PREFETCHT0 (R15)                                           \
	PREFETCHT0 64(R15)                                         \
	PREFETCHT0 128(R15)                                        \
	PREFETCHT0 192(R15)                                        \
	ADDQ       $256, R15                                       \
	VMOVDQU32  (R9)(R12*1), Z8                                 \
	VMOVDQU32  (R10)(R12*1), Z9                                \
	PAIR(LEVELS, (SI), (AX), 4(AX), Z0, Z10, Z11, Z12)                 \
	PAIR(LEVELS, (SI)(DX*1), (AX)(R14*1), 4(AX)(R14*1), Z1, Z13, Z14, Z15) \
	PAIR(LEVELS, (SI)(DX*2), (AX)(R14*2), 4(AX)(R14*2), Z2, Z16, Z17, Z18) \
	PAIR(LEVELS, (R13), (CX), 4(CX), Z3, Z19, Z20, Z21)                \
	ADDQ       $64, SI                                         \
	ADDQ       $64, R13                                        \
	ADDQ       $8, AX                                          \
	ADDQ       $8, CX                                          \
	ADDQ       $64, R12                                        \
	DECQ       R11                                             \
	JNZ        pair4                                           \
last4:                                                             \
	CMPQ       half+72(FP), $0                                 \
	JEQ        fold4                                           \
	VMOVDQU32  (R9)(R12*1), Z8                                 \
	VMOVDQU32  (R10)(R12*1), Z9                                \
	HALF(LEVELS, (SI), (AX), Z0, Y10, Z10, Z11, Z12)                   \
	HALF(LEVELS, (SI)(DX*1), (AX)(R14*1), Z1, Y13, Z13, Z14, Z15)      \
	HALF(LEVELS, (SI)(DX*2), (AX)(R14*2), Z2, Y16, Z16, Z17, Z18)      \
	HALF(LEVELS, (R13), (CX), Z3, Y19, Z19, Z20, Z21)                  \
	ADDQ       $32, SI                                         \
	ADDQ       $32, R13                                        \
	ADDQ       $4, AX                                          \
	ADDQ       $4, CX                                          \
fold4:                                                             \
	STORE4                                                     \
	SUBQ       $4, BX                                          \
	JNZ        rows4                                           \
	VZEROUPPER                                                 \
	RET

// ROWS1(LEVELS) is ROWS4 one row at a time, the body of int8Rows1VNNI
// and int8Rows1VBMI.
#define ROWS1(LEVELS) \
	SETUP512                                                   \
	MOVQ       rows+56(FP), BX                                 \
rows1:                                                             \
	VXORPS     Z0, Z0, Z0                                      \
	XORQ       R12, R12                                        \
	MOVQ       pairs+64(FP), R11                               \
	TESTQ      R11, R11                                        \
	JZ         last1                                           \
pair1:                                                             \
	VMOVDQU32  (R9)(R12*1), Z8                                 \
	VMOVDQU32  (R10)(R12*1), Z9                                \
	PAIR(LEVELS, (SI), (AX), 4(AX), Z0, Z10, Z11, Z12)                 \
	ADDQ       $64, SI                                         \
	ADDQ       $8, AX                                          \
	ADDQ       $64, R12                                        \
	DECQ       R11                                             \
	JNZ        pair1                                           \
last1:                                                             \
	CMPQ       half+72(FP), $0                                 \
	JEQ        fold1                                           \
	VMOVDQU32  (R9)(R12*1), Z8                                 \
	VMOVDQU32  (R10)(R12*1), Z9                                \
	HALF(LEVELS, (SI), (AX), Z0, Y10, Z10, Z11, Z12)                   \
	ADDQ       $32, SI                                         \
	ADDQ       $4, AX                                          \
fold1:                                                             \
	FOLD16(Z0, Y0, X0)                                         \
	VMOVSS     X0, (DI)                                        \
	ADDQ       $4, DI                                          \
	DECQ       BX                                              \
	JNZ        rows1                                           \
	VZEROUPPER                                                 \
	RET

// func int8Rows4VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)
//
// rows (a positive multiple of 4) consecutive rows of rowBytes bytes of
// codes: pairs pairs of steps, then a last step alone when half is 1.
// wscale holds one block absmax per step, row after row, scaleBytes bytes
// per row.
TEXT ·int8Rows4VNNI(SB), NOSPLIT, $0-96
	ROWS4(LEVELS512)

// func int8Rows1VNNI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)
//
// int8Rows4VNNI one row at a time, for any positive rows.
TEXT ·int8Rows1VNNI(SB), NOSPLIT, $0-96
	ROWS1(LEVELS512)

// func int8Rows4VBMI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)
//
// int8Rows4VNNI with VPERMB lookups (AVX-512 VBMI).
TEXT ·int8Rows4VBMI(SB), NOSPLIT, $0-96
	ROWS4(LEVELSVBMI)

// func int8Rows1VBMI(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]uint8, rows, pairs, half, rowBytes, scaleBytes int)
//
// int8Rows4VBMI one row at a time, for any positive rows.
TEXT ·int8Rows1VBMI(SB), NOSPLIT, $0-96
	ROWS1(LEVELSVBMI)

// STEP2(cs, qo, qe, xs, ws, acc) adds one step of a pair to its eight lanes
// in acc (the codes at cs, the vector's odd and even codes at qo and qe, the
// lane scales at xs, the block absmax at ws): levels signed (Y14 the table,
// Y15 the nibble mask), dotted with the vector's codes by DOT2AVX2, then
// scaled by the lane scales and the block absmax.
#define STEP2(cs, qo, qe, xs, ws, acc) \
	VMOVDQU      cs, Y4                  \
	VPSRLW       $4, Y4, Y5              \
	VPAND        Y15, Y4, Y4             \
	VPAND        Y15, Y5, Y5             \
	VPSHUFB      Y4, Y14, Y4             \
	VPSHUFB      Y5, Y14, Y5             \
	DOT2AVX2(qo, qe)                     \
	VCVTDQ2PS    Y6, Y6                  \
	VMULPS       xs, Y6, Y6              \
	VBROADCASTSS ws, Y12                 \
	VMULPS       Y12, Y6, Y6             \
	VADDPS       Y6, acc, acc

// func int8RowsAVX2(y *float32, codes *byte, q *int8, bias *int32, xscale *float32, wscale *float32, lut *[16]int8, rows, pairs, half, rowBytes, scaleBytes int)
//
// int8Rows1VNNI with AVX2, a step at a time: the levels are signed (lut
// holds int8Codebook, bias is not read). |level|·|code| ≤ 127·127, so the
// int16 pair sums of VPMADDUBSW cannot saturate. Lanes 0–7 are in Y0, 8–15
// in Y1.
TEXT ·int8RowsAVX2(SB), NOSPLIT, $0-96
	MOVQ           y+0(FP), DI
	MOVQ           codes+8(FP), SI
	MOVQ           q+16(FP), R8
	MOVQ           xscale+32(FP), R10
	MOVQ           wscale+40(FP), AX
	MOVQ           lut+48(FP), R11
	VBROADCASTI128 (R11), Y14
	VMOVDQU        int8Nibbles<>(SB), Y15
	VMOVDQU        int8Ones16<>(SB), Y13
	MOVQ           rows+56(FP), BX

rows2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ   R12, R12
	MOVQ   pairs+64(FP), R11
	TESTQ  R11, R11
	JZ     last2

pair2:
	STEP2((SI), (R8)(R12*2), 64(R8)(R12*2), (R10)(R12*1), (AX), Y0)
	STEP2(32(SI), 32(R8)(R12*2), 96(R8)(R12*2), 32(R10)(R12*1), 4(AX), Y1)
	ADDQ $64, SI
	ADDQ $8, AX
	ADDQ $64, R12
	DECQ R11
	JNZ  pair2

last2:
	CMPQ half+72(FP), $0
	JEQ  fold2
	STEP2((SI), (R8)(R12*2), 64(R8)(R12*2), (R10)(R12*1), (AX), Y0)
	ADDQ $32, SI
	ADDQ $4, AX

fold2:
	FOLD8X2
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	DECQ         BX
	JNZ          rows2
	VZEROUPPER
	RET

// int8EvenIdx and int8OddIdx pick the even and the odd float32s of a pair
// of registers (VPERMT2PS): columns 0, 2, …, 30 and 1, 3, …, 31 of a group.
DATA int8EvenIdx<>+0(SB)/4, $0
DATA int8EvenIdx<>+4(SB)/4, $2
DATA int8EvenIdx<>+8(SB)/4, $4
DATA int8EvenIdx<>+12(SB)/4, $6
DATA int8EvenIdx<>+16(SB)/4, $8
DATA int8EvenIdx<>+20(SB)/4, $10
DATA int8EvenIdx<>+24(SB)/4, $12
DATA int8EvenIdx<>+28(SB)/4, $14
DATA int8EvenIdx<>+32(SB)/4, $16
DATA int8EvenIdx<>+36(SB)/4, $18
DATA int8EvenIdx<>+40(SB)/4, $20
DATA int8EvenIdx<>+44(SB)/4, $22
DATA int8EvenIdx<>+48(SB)/4, $24
DATA int8EvenIdx<>+52(SB)/4, $26
DATA int8EvenIdx<>+56(SB)/4, $28
DATA int8EvenIdx<>+60(SB)/4, $30
GLOBL int8EvenIdx<>(SB), RODATA|NOPTR, $64
DATA int8OddIdx<>+0(SB)/4, $1
DATA int8OddIdx<>+4(SB)/4, $3
DATA int8OddIdx<>+8(SB)/4, $5
DATA int8OddIdx<>+12(SB)/4, $7
DATA int8OddIdx<>+16(SB)/4, $9
DATA int8OddIdx<>+20(SB)/4, $11
DATA int8OddIdx<>+24(SB)/4, $13
DATA int8OddIdx<>+28(SB)/4, $15
DATA int8OddIdx<>+32(SB)/4, $17
DATA int8OddIdx<>+36(SB)/4, $19
DATA int8OddIdx<>+40(SB)/4, $21
DATA int8OddIdx<>+44(SB)/4, $23
DATA int8OddIdx<>+48(SB)/4, $25
DATA int8OddIdx<>+52(SB)/4, $27
DATA int8OddIdx<>+56(SB)/4, $29
DATA int8OddIdx<>+60(SB)/4, $31
GLOBL int8OddIdx<>(SB), RODATA|NOPTR, $64

// func int8QuantizePairVNNI(x *float32, q *int8, scale *float32, bias *int32, groups int) int
//
// quantizePairScalar for groups groups of 32 values: per group the bits of
// max|x| (a max of unsigned integers, as absmaxBits), 127/amax and
// amax/16129 by VDIVSS, the values times 127/amax, rounded to nearest even
// (VCVTPS2DQ under Go's MXCSR) and saturated to int8 (VPMOVSDB); then the
// lane biases −128 × (sum of the lane's eight codes), by VPDPBUSD with ones.
TEXT ·int8QuantizePairVNNI(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ scale+16(FP), DX
	MOVQ bias+24(FP), R9
	MOVQ groups+32(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	VMOVDQU64 int8EvenIdx<>(SB), Z30
	VMOVDQU64 int8OddIdx<>(SB), Z29
	XORQ BX, BX

qgroup:
	CMPQ BX, CX
	JGE  qbias
	MOVQ BX, R10
	SHLQ $7, R10
	VMOVUPS (DI)(R10*1), Z0
	VMOVUPS 64(DI)(R10*1), Z1
	VPANDD  Z31, Z0, Z2
	VPANDD  Z31, Z1, Z3
	VPMAXUD Z3, Z2, Z2
	VEXTRACTI64X4 $1, Z2, Y3
	VPMAXUD Y3, Y2, Y2
	VEXTRACTI128 $1, Y2, X3
	VPMAXUD X3, X2, X2
	VPSHUFD $0x4e, X2, X3
	VPMAXUD X3, X2, X2
	VPSHUFD $0xb1, X2, X3
	VPMAXUD X3, X2, X2
	VMOVD   X2, AX
	CMPL    AX, $0x7f800000
	JAE     qbad
	VXORPS  X4, X4, X4
	VXORPS  X5, X5, X5
	CMPL    AX, $0x03800000 // minInt8Amax, 2⁻¹²⁰
	JB      qscaled
	MOVL    $0x42fe0000, AX // 127
	VMOVD   AX, X4
	VDIVSS  X2, X4, X4
	MOVL    $0x467c0400, AX // 127²
	VMOVD   AX, X6
	VDIVSS  X6, X2, X5

qscaled:
	VBROADCASTSS X4, Z4
	VMULPS    Z4, Z0, Z0
	VMULPS    Z4, Z1, Z1
	VMOVDQA64 Z0, Z6
	VPERMT2PS Z1, Z30, Z6
	VPERMT2PS Z1, Z29, Z0
	VCVTPS2DQ Z6, Z6
	VCVTPS2DQ Z0, Z0
	MOVQ      BX, R10
	SHLQ      $4, R10
	VPMOVSDB  Z0, (SI)(R10*1)
	VPMOVSDB  Z6, 64(SI)(R10*1)
	VBROADCASTSS X5, X5
	VMOVUPS   X5, (DX)(R10*1)
	INCQ      BX
	JMP       qgroup

qbias:
	MOVL $0x01010101, AX
	VPBROADCASTD AX, Z12
	VPXORD   Z13, Z13, Z13
	VMOVDQU64 (SI), Z10
	VMOVDQU64 64(SI), Z11
	VPDPBUSD Z10, Z12, Z13
	VPDPBUSD Z11, Z12, Z13
	VPSLLD   $7, Z13, Z13
	VPXORD   Z14, Z14, Z14
	VPSUBD   Z13, Z14, Z13
	VMOVDQU32 Z13, (R9)
	MOVQ $-1, ret+40(FP)
	VZEROUPPER
	RET

qbad:
	MOVQ BX, ret+40(FP)
	VZEROUPPER
	RET
