// Int8Matrix products with an Int8Vector (int8mat.go has the order the
// lanes follow, int8mat_amd64.go the calling convention). A pair is 128
// columns: 128 code bytes (the odd columns, then the even ones, as the
// vector's codes), four block maxima. R12 walks the vector: 64 bytes of
// lane biases and of lane scales per pair, 128 bytes of codes.

#include "textflag.h"
#include "int8_amd64.h"
#include "ahead_amd64.h"

// int8MatLaneBlock picks, for lane j, the block maximum j/4 of a pair's
// four (VPERMPS).
DATA int8MatLaneBlock<>+0(SB)/8, $0x0000000000000000
DATA int8MatLaneBlock<>+8(SB)/8, $0x0000000000000000
DATA int8MatLaneBlock<>+16(SB)/8, $0x0000000100000001
DATA int8MatLaneBlock<>+24(SB)/8, $0x0000000100000001
DATA int8MatLaneBlock<>+32(SB)/8, $0x0000000200000002
DATA int8MatLaneBlock<>+40(SB)/8, $0x0000000200000002
DATA int8MatLaneBlock<>+48(SB)/8, $0x0000000300000003
DATA int8MatLaneBlock<>+56(SB)/8, $0x0000000300000003
GLOBL int8MatLaneBlock<>(SB), RODATA|NOPTR, $64

// int8MatSigns is 32 bytes 0x80: XOR turns a biased code into its int8.
DATA int8MatSigns<>+0(SB)/8, $0x8080808080808080
DATA int8MatSigns<>+8(SB)/8, $0x8080808080808080
DATA int8MatSigns<>+16(SB)/8, $0x8080808080808080
DATA int8MatSigns<>+24(SB)/8, $0x8080808080808080
GLOBL int8MatSigns<>(SB), RODATA|NOPTR, $32

// MPAIR(c0, c1, sc, acc, za, zb, zi, zw) adds one pair of one row to the
// lanes acc: its odd and even columns' biased codes at c0 and c1 dotted
// with the vector's codes at (R8)(R12*2) and 64(R8)(R12*2) from the lane
// biases in Z8, scaled by the lane scales in Z9, then by the lanes' block
// maxima, picked from the four at sc by the indices in Z30 (the load reads
// 64 bytes: int8MatPad).
#define MPAIR(c0, c1, sc, acc, za, zb, zi, zw) \
	VMOVDQU64 c0, za                   \
	VMOVDQU64 c1, zb                   \
	VMOVDQA32 Z8, zi                   \
	VPDPBUSD  (R8)(R12*2), za, zi      \
	VPDPBUSD  64(R8)(R12*2), zb, zi    \
	VCVTDQ2PS zi, zi                   \
	VMULPS    Z9, zi, zi               \
	VPERMPS   sc, Z30, zw              \
	VMULPS    zw, zi, zi               \
	VADDPS    zi, acc, acc

// MSETUP loads the arguments common to the kernels: y in DI, codes in SI,
// the vector's codes, biases and scales in R8, R9, R10, the block maxima
// in AX, rowBytes in DX, scaleBytes in R14, rows in BX.
#define MSETUP \
	MOVQ y+0(FP), DI           \
	MOVQ codes+8(FP), SI       \
	MOVQ q+16(FP), R8          \
	MOVQ bias+24(FP), R9       \
	MOVQ xscale+32(FP), R10    \
	MOVQ wscale+40(FP), AX     \
	MOVQ rows+48(FP), BX       \
	MOVQ rowBytes+64(FP), DX   \
	MOVQ scaleBytes+72(FP), R14

// func int8MatRows4VNNI(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)
//
// rows (a positive multiple of 4) consecutive rows of pairs pairs each.
TEXT ·int8MatRows4VNNI(SB), NOSPLIT, $0-80
	MSETUP
	VMOVDQU64 int8MatLaneBlock<>(SB), Z30
	ROW3
	// As int8Rows4VNNI: R15 walks the four rows' run of codes
	// codesAhead bytes ahead, eight lines a pair.
	LEAQ codesAhead(SI), R15

mrows4:
	SCALESAHEAD(mscales4)
	VXORPS     Z0, Z0, Z0
	VXORPS     Z1, Z1, Z1
	VXORPS     Z2, Z2, Z2
	VXORPS     Z3, Z3, Z3
	XORQ       R12, R12
	MOVQ   pairs+56(FP), R11

mpair4:
	PREFETCHT0 (R15)
	PREFETCHT0 64(R15)
	PREFETCHT0 128(R15)
	PREFETCHT0 192(R15)
	PREFETCHT0 256(R15)
	PREFETCHT0 320(R15)
	PREFETCHT0 384(R15)
	PREFETCHT0 448(R15)
	ADDQ       $512, R15
	VMOVDQU32 (R9)(R12*1), Z8
	VMOVDQU32 (R10)(R12*1), Z9
	MPAIR((SI), 64(SI), (AX), Z0, Z10, Z11, Z12, Z13)
	MPAIR((SI)(DX*1), 64(SI)(DX*1), (AX)(R14*1), Z1, Z14, Z15, Z16, Z17)
	MPAIR((SI)(DX*2), 64(SI)(DX*2), (AX)(R14*2), Z2, Z18, Z19, Z20, Z21)
	MPAIR((R13), 64(R13), (CX), Z3, Z22, Z23, Z24, Z25)
	ADDQ $128, SI
	ADDQ $128, R13
	ADDQ $16, AX
	ADDQ $16, CX
	ADDQ $64, R12
	DECQ R11
	JNZ  mpair4

	STORE4
	SUBQ $4, BX
	JNZ  mrows4
	VZEROUPPER
	RET

// func int8MatRows1VNNI(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)
//
// int8MatRows4VNNI one row at a time, for any positive rows.
TEXT ·int8MatRows1VNNI(SB), NOSPLIT, $0-80
	MSETUP
	VMOVDQU64 int8MatLaneBlock<>(SB), Z30

mrows1:
	VXORPS Z0, Z0, Z0
	XORQ   R12, R12
	MOVQ   pairs+56(FP), R11

mpair1:
	VMOVDQU32 (R9)(R12*1), Z8
	VMOVDQU32 (R10)(R12*1), Z9
	MPAIR((SI), 64(SI), (AX), Z0, Z10, Z11, Z12, Z13)
	ADDQ $128, SI
	ADDQ $16, AX
	ADDQ $64, R12
	DECQ R11
	JNZ  mpair1

	FOLD16(Z0, Y0, X0)
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   BX
	JNZ    mrows1
	VZEROUPPER
	RET

// MHALF2(c0, c1, q0, q1, xs, acc) adds one half of a pair (eight lanes) of
// one row to acc: the biased codes at c0 and c1 made signed (XOR by Y15),
// dotted with the vector's codes at q0 and q1 by DOT2AVX2, then scaled by
// the lane scales at xs and the lanes' block maxima in Y12.
#define MHALF2(c0, c1, q0, q1, xs, acc) \
	VMOVDQU    c0, Y4          \
	VMOVDQU    c1, Y5          \
	VPXOR      Y15, Y4, Y4     \
	VPXOR      Y15, Y5, Y5     \
	DOT2AVX2(q0, q1)           \
	VCVTDQ2PS  Y6, Y6          \
	VMULPS     xs, Y6, Y6      \
	VMULPS     Y12, Y6, Y6     \
	VADDPS     Y6, acc, acc

// func int8MatRowsAVX2(y *float32, codes *uint8, q *int8, bias *int32, xscale *float32, wscale *float32, rows, pairs, rowBytes, scaleBytes int)
//
// int8MatRows1VNNI with AVX2: lanes 0–7 in Y0, 8–15 in Y1; the lane
// biases are not read (the codes are made signed). |code|·|x code| ≤
// 127·127, so the int16 pair sums of VPMADDUBSW cannot saturate.
TEXT ·int8MatRowsAVX2(SB), NOSPLIT, $0-80
	MSETUP
	VMOVDQU int8MatSigns<>(SB), Y15
	VMOVDQU int8Ones16<>(SB), Y13
	VMOVDQU int8MatLaneBlock<>(SB), Y11     // lanes 0–7: blocks 0, 0, 0, 0, 1, 1, 1, 1
	VMOVDQU int8MatLaneBlock<>+32(SB), Y14  // lanes 8–15: blocks 2, …, 3

mrows2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ   R12, R12
	MOVQ   pairs+56(FP), R11

mpair2:
	VPERMPS (AX), Y11, Y12
	MHALF2((SI), 64(SI), (R8)(R12*2), 64(R8)(R12*2), (R10)(R12*1), Y0)
	VPERMPS (AX), Y14, Y12
	MHALF2(32(SI), 96(SI), 32(R8)(R12*2), 96(R8)(R12*2), 32(R10)(R12*1), Y1)
	ADDQ $128, SI
	ADDQ $16, AX
	ADDQ $64, R12
	DECQ R11
	JNZ  mpair2

	FOLD8X2
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	DECQ         BX
	JNZ          mrows2
	VZEROUPPER
	RET
