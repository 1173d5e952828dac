// NF4 quantization kernels for amd64: absmax and codes of whole blocks,
// 32 weights per step. The Go declarations and the search tables are in
// quantize_amd64.go.
//
// Per block: the absmax is the maximum of the weights' bits with the sign
// cleared (unsigned dword maximum, as the scalar absmaxBits); a result at or
// above the bits of +Inf stops the kernel at that block. Each weight is then
// divided by the absmax (VDIVPS: IEEE division, the same rounding as Go's)
// and its code is the number of midpoints strictly below the quotient, found
// by a branch-free binary search on h = code/2: h = 4 if v > m7; h += 2 if
// v > m[2h+3]; h += 1 if v > m[2h+1]; code = 2h + (v > m[2h]). The three
// tables indexed by h (8 floats each) are rows 1..3 of tables; row 0 is m7
// eight times.

#include "textflag.h"

// REDUCEMAX leaves the unsigned maximum of the 8 dwords of Y0 in X0's low
// dword. Uses X1.
#define REDUCEMAX \
	VEXTRACTI128 $1, Y0, X1; \
	VPMAXUD      X1, X0, X0; \
	VPSHUFD      $0x4e, X0, X1; \
	VPMAXUD      X1, X0, X0; \
	VPSHUFD      $0xb1, X0, X1; \
	VPMAXUD      X1, X0, X0

// SEARCH512(v, c) writes the codes of the 16 quotients in v to c (dwords).
// Needs Z20 (m7), Z21..Z23 (tables), Z24..Z26 (dwords 4, 2, 1). Uses Z27
// and K1..K4.
#define SEARCH512(v, c) \
	VCMPPS     $0x1e, Z20, v, K1; \
	VMOVDQA32.Z Z24, K1, c; \
	VPERMPS    Z21, c, Z27; \
	VCMPPS     $0x1e, Z27, v, K2; \
	VPADDD     Z25, c, K2, c; \
	VPERMPS    Z22, c, Z27; \
	VCMPPS     $0x1e, Z27, v, K3; \
	VPADDD     Z26, c, K3, c; \
	VPERMPS    Z23, c, Z27; \
	VCMPPS     $0x1e, Z27, v, K4; \
	VPADDD     c, c, c; \
	VPADDD     Z26, c, K4, c

// PACK512(c, off) stores the 16 codes in c as 8 bytes at off(DI), element
// 2i in the high nibble of byte i. Uses Z28.
#define PACK512(c, off) \
	VPSRLQ  $32, c, Z28; \
	VPSLLQ  $4, c, c; \
	VPORQ   Z28, c, c; \
	VPMOVQB c, X28; \
	VMOVQ   X28, off(DI)

// func quantizeAVX512(packed *byte, absmax *float32, w *float32, blocks, blockGroups int, tables *[4][8]float32) int
TEXT ·quantizeAVX512(SB), NOSPLIT, $0-56
	MOVQ packed+0(FP), DI
	MOVQ absmax+8(FP), SI
	MOVQ w+16(FP), BX
	MOVQ blocks+24(FP), CX
	MOVQ blockGroups+32(FP), R8
	MOVQ tables+40(FP), AX
	VBROADCASTSS 0(AX), Z20
	VMOVUPS      32(AX), Y21
	VMOVUPS      64(AX), Y22
	VMOVUPS      96(AX), Y23
	MOVL         $4, R11
	VPBROADCASTD R11, Z24
	MOVL         $2, R11
	VPBROADCASTD R11, Z25
	MOVL         $1, R11
	VPBROADCASTD R11, Z26
	MOVL         $0x7fffffff, R11
	VPBROADCASTD R11, Z29
	XORQ         DX, DX // block index

block512:
	CMPQ DX, CX
	JAE  done512

	// Absmax bits of the block.
	VPXORD Z0, Z0, Z0
	MOVQ   BX, R10
	MOVQ   R8, R9

abs512:
	VPANDD  (R10), Z29, Z1
	VPANDD  64(R10), Z29, Z2
	VPMAXUD Z1, Z0, Z0
	VPMAXUD Z2, Z0, Z0
	ADDQ    $128, R10
	DECQ    R9
	JNZ     abs512
	VEXTRACTI64X4 $1, Z0, Y1
	VPMAXUD       Y1, Y0, Y0
	REDUCEMAX
	VMOVD X0, AX
	CMPL  AX, $0x7f800000
	JAE   bad512
	MOVL  AX, (SI)(DX*4)
	TESTL AX, AX
	JZ    zero512

	VPBROADCASTD X0, Z3
	MOVQ         BX, R10
	MOVQ         R8, R9

enc512:
	VMOVUPS (R10), Z4
	VMOVUPS 64(R10), Z5
	VDIVPS  Z3, Z4, Z4
	VDIVPS  Z3, Z5, Z5
	SEARCH512(Z4, Z6)
	PACK512(Z6, 0)
	SEARCH512(Z5, Z7)
	PACK512(Z7, 8)
	ADDQ    $128, R10
	ADDQ    $16, DI
	DECQ    R9
	JNZ     enc512
	JMP     next512

zero512:
	// Every code 7 (the code of 0).
	MOVQ $0x7777777777777777, R11
	MOVQ R8, R9

fill512:
	MOVQ R11, (DI)
	MOVQ R11, 8(DI)
	ADDQ $16, DI
	DECQ R9
	JNZ  fill512

next512:
	MOVQ R8, R9
	SHLQ $7, R9
	ADDQ R9, BX
	INCQ DX
	JMP  block512

bad512:
	MOVQ DX, ret+48(FP)
	VZEROUPPER
	RET

done512:
	MOVQ CX, ret+48(FP)
	VZEROUPPER
	RET

// SEARCH256(v, c) is SEARCH512 for the 8 quotients in v with AVX2: masks are
// all-ones dwords. Needs Y8 (m7), Y9..Y11 (tables), Y12..Y14 (dwords 4, 2,
// 1). Uses Y15 and Y7.
#define SEARCH256(v, c) \
	VCMPPS  $0x1e, Y8, v, c; \
	VPAND   Y12, c, c; \
	VPERMPS Y9, c, Y15; \
	VCMPPS  $0x1e, Y15, v, Y7; \
	VPAND   Y13, Y7, Y7; \
	VPADDD  Y7, c, c; \
	VPERMPS Y10, c, Y15; \
	VCMPPS  $0x1e, Y15, v, Y7; \
	VPAND   Y14, Y7, Y7; \
	VPADDD  Y7, c, c; \
	VPERMPS Y11, c, Y15; \
	VCMPPS  $0x1e, Y15, v, Y7; \
	VPADDD  c, c, c; \
	VPSUBD  Y7, c, c

// func quantizeAVX2(packed *byte, absmax *float32, w *float32, blocks, blockGroups int, tables *[4][8]float32) int
TEXT ·quantizeAVX2(SB), NOSPLIT, $0-56
	MOVQ packed+0(FP), DI
	MOVQ absmax+8(FP), SI
	MOVQ w+16(FP), BX
	MOVQ blocks+24(FP), CX
	MOVQ blockGroups+32(FP), R8
	MOVQ tables+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VMOVUPS      32(AX), Y9
	VMOVUPS      64(AX), Y10
	VMOVUPS      96(AX), Y11
	MOVL         $4, R11
	VMOVD        R11, X12
	VPBROADCASTD X12, Y12
	MOVL         $2, R11
	VMOVD        R11, X13
	VPBROADCASTD X13, Y13
	MOVL         $1, R11
	VMOVD        R11, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x00ff00ff, R11
	VMOVD        R11, X5
	VPBROADCASTD X5, Y5
	XORQ         DX, DX

block256:
	CMPQ DX, CX
	JAE  done256

	// Y6 is the sign mask here and the quotients in the encoding loop.
	VPCMPEQD Y6, Y6, Y6
	VPSRLD   $1, Y6, Y6
	VPXOR    Y0, Y0, Y0
	MOVQ     BX, R10
	MOVQ  R8, R9

abs256:
	VPAND   (R10), Y6, Y1
	VPAND   32(R10), Y6, Y2
	VPAND   64(R10), Y6, Y3
	VPAND   96(R10), Y6, Y4
	VPMAXUD Y1, Y0, Y0
	VPMAXUD Y2, Y0, Y0
	VPMAXUD Y3, Y0, Y0
	VPMAXUD Y4, Y0, Y0
	ADDQ    $128, R10
	DECQ    R9
	JNZ     abs256
	REDUCEMAX
	VMOVD X0, AX
	CMPL  AX, $0x7f800000
	JAE   bad256
	MOVL  AX, (SI)(DX*4)
	TESTL AX, AX
	JZ    zero256

	VPBROADCASTD X0, Y3
	MOVQ         BX, R10
	MOVQ         R8, R9

enc256:
	// Codes of elements 0..7, 8..15, 16..23, 24..31 in Y0, Y1, Y2, Y4.
	VMOVUPS (R10), Y6
	VDIVPS  Y3, Y6, Y6
	SEARCH256(Y6, Y0)
	VMOVUPS 32(R10), Y6
	VDIVPS  Y3, Y6, Y6
	SEARCH256(Y6, Y1)
	VMOVUPS 64(R10), Y6
	VDIVPS  Y3, Y6, Y6
	SEARCH256(Y6, Y2)
	VMOVUPS 96(R10), Y6
	VDIVPS  Y3, Y6, Y6
	SEARCH256(Y6, Y4)

	// Narrow to 32 bytes in element order: the packs interleave 128-bit
	// lanes, VPERMQ puts the quarters back in order.
	VPACKUSDW Y1, Y0, Y0
	VPACKUSDW Y4, Y2, Y2
	VPACKUSWB Y2, Y0, Y0
	VPERMQ    $0xd8, Y0, Y0
	VPSHUFD   $0xd8, Y0, Y0

	// Two codes per byte: word k holds elements 2k (low byte) and 2k+1.
	VPSLLW    $4, Y0, Y1
	VPSRLW    $8, Y0, Y0
	VPOR      Y1, Y0, Y0
	VPAND     Y5, Y0, Y0
	VPACKUSWB Y0, Y0, Y0
	VPERMQ    $0x08, Y0, Y0
	VMOVDQU   X0, (DI)

	ADDQ $128, R10
	ADDQ $16, DI
	DECQ R9
	JNZ  enc256
	JMP  next256

zero256:
	MOVQ $0x7777777777777777, R11
	MOVQ R8, R9

fill256:
	MOVQ R11, (DI)
	MOVQ R11, 8(DI)
	ADDQ $16, DI
	DECQ R9
	JNZ  fill256

next256:
	MOVQ R8, R9
	SHLQ $7, R9
	ADDQ R9, BX
	INCQ DX
	JMP  block256

bad256:
	MOVQ DX, ret+48(FP)
	VZEROUPPER
	RET

done256:
	MOVQ CX, ret+48(FP)
	VZEROUPPER
	RET
