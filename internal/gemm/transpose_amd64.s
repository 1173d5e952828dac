#include "textflag.h"

// TRANSPOSE8 loads the 8×8 block at SI (rows BX bytes apart, R12 = 3·BX)
// and leaves its columns in Y8…Y15, using Y0…Y7 and R8.
#define TRANSPOSE8 \
	MOVQ       SI, R8; \
	VMOVUPS    (R8), Y0; \
	VMOVUPS    (R8)(BX*1), Y1; \
	VMOVUPS    (R8)(BX*2), Y2; \
	VMOVUPS    (R8)(R12*1), Y3; \
	LEAQ       (R8)(BX*4), R8; \
	VMOVUPS    (R8), Y4; \
	VMOVUPS    (R8)(BX*1), Y5; \
	VMOVUPS    (R8)(BX*2), Y6; \
	VMOVUPS    (R8)(R12*1), Y7; \
	TRANSPOSEREGS

// TRANSPOSEREGS transposes the 8×8 block whose rows are in Y0…Y7 into
// its columns in Y8…Y15, overwriting Y0…Y7.
#define TRANSPOSEREGS \
	VUNPCKLPS  Y1, Y0, Y8; \
	VUNPCKHPS  Y1, Y0, Y9; \
	VUNPCKLPS  Y3, Y2, Y10; \
	VUNPCKHPS  Y3, Y2, Y11; \
	VUNPCKLPS  Y5, Y4, Y12; \
	VUNPCKHPS  Y5, Y4, Y13; \
	VUNPCKLPS  Y7, Y6, Y14; \
	VUNPCKHPS  Y7, Y6, Y15; \
	VSHUFPS    $0x44, Y10, Y8, Y0; \
	VSHUFPS    $0xEE, Y10, Y8, Y1; \
	VSHUFPS    $0x44, Y11, Y9, Y2; \
	VSHUFPS    $0xEE, Y11, Y9, Y3; \
	VSHUFPS    $0x44, Y14, Y12, Y4; \
	VSHUFPS    $0xEE, Y14, Y12, Y5; \
	VSHUFPS    $0x44, Y15, Y13, Y6; \
	VSHUFPS    $0xEE, Y15, Y13, Y7; \
	VPERM2F128 $0x20, Y4, Y0, Y8; \
	VPERM2F128 $0x20, Y5, Y1, Y9; \
	VPERM2F128 $0x20, Y6, Y2, Y10; \
	VPERM2F128 $0x20, Y7, Y3, Y11; \
	VPERM2F128 $0x31, Y4, Y0, Y12; \
	VPERM2F128 $0x31, Y5, Y1, Y13; \
	VPERM2F128 $0x31, Y6, Y2, Y14; \
	VPERM2F128 $0x31, Y7, Y3, Y15

// func transpose8AVX(dst *float32, w int, src *float32, ld int, k int)
//
// dst[p·w+i] = src[i·ld+p] for i < 8 and p < k, k a positive multiple of 8:
// each 8×8 block is loaded as eight rows and stored as eight columns.
TEXT ·transpose8AVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), R11
	SHLQ $2, R11
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), BX
	SHLQ $2, BX
	MOVQ k+32(FP), CX
	LEAQ (BX)(BX*2), R12 // 3·ld
	LEAQ (R11)(R11*2), R13 // 3·w

block:
	TRANSPOSE8

	MOVQ DI, R9
	VMOVUPS Y8, (R9)
	VMOVUPS Y9, (R9)(R11*1)
	VMOVUPS Y10, (R9)(R11*2)
	VMOVUPS Y11, (R9)(R13*1)
	LEAQ (R9)(R11*4), R9
	VMOVUPS Y12, (R9)
	VMOVUPS Y13, (R9)(R11*1)
	VMOVUPS Y14, (R9)(R11*2)
	VMOVUPS Y15, (R9)(R13*1)

	ADDQ $32, SI
	LEAQ (R9)(R11*4), DI
	SUBQ $8, CX
	JNZ  block
	VZEROUPPER
	RET

// func transpose6AVX(dst *float32, src *float32, ld int, k int)
//
// dst[p·6+i] = src[i·ld+p] for i < 6 and p < k, k a positive multiple of
// 8, in blocks of six rows by eight steps, which fill 48 consecutive
// elements of dst. Rows 0–3 are transposed as in TRANSPOSE8, into four
// registers that hold steps j and j+4 in their two halves, each stored as
// 16 bytes; rows 4 and 5 are only interleaved, into two registers of
// pairs (step j's two elements, 8 bytes) stored a pair at a time. No
// store overlaps another.
TEXT ·transpose6AVX(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), BX
	SHLQ $2, BX
	MOVQ k+24(FP), CX
	LEAQ (BX)(BX*2), R12 // 3·ld

block6:
	MOVQ      SI, R8
	VMOVUPS   (R8), Y0
	VMOVUPS   (R8)(BX*1), Y1
	VMOVUPS   (R8)(BX*2), Y2
	VMOVUPS   (R8)(R12*1), Y3
	LEAQ      (R8)(BX*4), R8
	VMOVUPS   (R8), Y4
	VMOVUPS   (R8)(BX*1), Y5
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VSHUFPS   $0x44, Y10, Y8, Y0 // steps 0 and 4, rows 0–3
	VSHUFPS   $0xEE, Y10, Y8, Y1 // steps 1 and 5
	VSHUFPS   $0x44, Y11, Y9, Y2 // steps 2 and 6
	VSHUFPS   $0xEE, Y11, Y9, Y3 // steps 3 and 7
	VUNPCKLPS Y5, Y4, Y12        // rows 4–5 of steps 0, 1, 4, 5
	VUNPCKHPS Y5, Y4, Y13        // of steps 2, 3, 6, 7

	VMOVUPS      X0, (DI)
	VEXTRACTF128 $1, Y0, 96(DI)
	VMOVUPS      X1, 24(DI)
	VEXTRACTF128 $1, Y1, 120(DI)
	VMOVUPS      X2, 48(DI)
	VEXTRACTF128 $1, Y2, 144(DI)
	VMOVUPS      X3, 72(DI)
	VEXTRACTF128 $1, Y3, 168(DI)
	VEXTRACTF128 $1, Y12, X14
	VEXTRACTF128 $1, Y13, X15
	VMOVLPS      X12, 16(DI)
	VMOVHPS      X12, 40(DI)
	VMOVLPS      X13, 64(DI)
	VMOVHPS      X13, 88(DI)
	VMOVLPS      X14, 112(DI)
	VMOVHPS      X14, 136(DI)
	VMOVLPS      X15, 160(DI)
	VMOVHPS      X15, 184(DI)

	ADDQ $32, SI
	ADDQ $192, DI
	SUBQ $8, CX
	JNZ  block6
	VZEROUPPER
	RET

// func transposeMerge8AVX(dst *float32, w int, src *float32, ld int, k int, beta float32)
//
// dst[p·w+i] = src[i·ld+p] + beta·dst[p·w+i] for i < 8 and p < k, k a
// positive multiple of 8, not reading dst when beta's bits are zero: the
// 8×8 blocks of transpose8AVX, merged into dst instead of overwriting it.
TEXT ·transposeMerge8AVX(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), R11
	SHLQ $2, R11
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), BX
	SHLQ $2, BX
	MOVQ k+32(FP), CX
	MOVL beta+40(FP), DX
	LEAQ (BX)(BX*2), R12 // 3·ld
	LEAQ (R11)(R11*2), R13 // 3·w

mblock:
	TRANSPOSE8

	MOVQ DI, R9
	LEAQ (R9)(R11*4), R10
	TESTL DX, DX
	JZ    mstore
	VBROADCASTSS beta+40(FP), Y0
	VFMADD231PS (R9), Y0, Y8
	VFMADD231PS (R9)(R11*1), Y0, Y9
	VFMADD231PS (R9)(R11*2), Y0, Y10
	VFMADD231PS (R9)(R13*1), Y0, Y11
	VFMADD231PS (R10), Y0, Y12
	VFMADD231PS (R10)(R11*1), Y0, Y13
	VFMADD231PS (R10)(R11*2), Y0, Y14
	VFMADD231PS (R10)(R13*1), Y0, Y15

mstore:
	VMOVUPS Y8, (R9)
	VMOVUPS Y9, (R9)(R11*1)
	VMOVUPS Y10, (R9)(R11*2)
	VMOVUPS Y11, (R9)(R13*1)
	VMOVUPS Y12, (R10)
	VMOVUPS Y13, (R10)(R11*1)
	VMOVUPS Y14, (R10)(R11*2)
	VMOVUPS Y15, (R10)(R13*1)

	ADDQ $32, SI
	LEAQ (R10)(R11*4), DI
	SUBQ $8, CX
	JNZ  mblock
	VZEROUPPER
	RET

// func packRunsAVX512(dst *float32, dw int, src *float32, ld int, k int, load uint64, store uint64)
//
// For p < k, copies the elements of src[p·ld:] whose bits are set in load
// to dst[p·dw:], writing the elements whose bits are set in store (zeros
// where store has a bit that load has not): runs of up to 48 elements in
// one to three masked zmm moves (as many as store needs), which neither
// read nor write outside the masks.
TEXT ·packRunsAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ dw+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R9
	SHLQ $2, R9
	MOVQ k+32(FP), CX
	MOVQ load+40(FP), AX
	MOVQ store+48(FP), BX
	KMOVQ AX, K1
	KSHIFTRQ $16, K1, K2
	KSHIFTRQ $32, K1, K3
	KMOVQ BX, K4
	KSHIFTRQ $16, K4, K5
	KSHIFTRQ $32, K4, K6
	TESTQ CX, CX
	JZ    runsdone
	SHRQ  $16, BX
	JZ    runs1
	SHRQ  $16, BX
	JZ    runs2

runs3:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS.Z 128(SI), K3, Z2
	VMOVUPS   Z0, K4, (DI)
	VMOVUPS   Z1, K5, 64(DI)
	VMOVUPS   Z2, K6, 128(DI)
	ADDQ      R9, SI
	ADDQ      R8, DI
	DECQ      CX
	JNZ       runs3
	JMP       runsdone

runs2:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS   Z0, K4, (DI)
	VMOVUPS   Z1, K5, 64(DI)
	ADDQ      R9, SI
	ADDQ      R8, DI
	DECQ      CX
	JNZ       runs2
	JMP       runsdone

runs1:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS   Z0, K4, (DI)
	ADDQ      R9, SI
	ADDQ      R8, DI
	DECQ      CX
	JNZ       runs1

runsdone:
	VZEROUPPER
	RET
