#include "textflag.h"

// ROW6_STEP(xoff, woff) is one step k of a half of mulPanel6AVX2: the 16
// columns of the panel's row k at DX+xoff in Y0, Y1, then element k of each
// of the six rows of w (at woff(Rr)(AX*1), Rr = SI, R8–R12) broadcast into
// Y14 or Y15 (two registers, so that a broadcast does not wait for the FMAs
// of the one before) for its two FMAs into Y2–Y13.
#define ROW6_STEP(xoff, woff) \
	VMOVUPS      xoff(DX), Y0          \
	VMOVUPS      xoff+32(DX), Y1       \
	VBROADCASTSS woff(SI)(AX*1), Y14   \
	VFMADD231PS  Y14, Y0, Y2           \
	VFMADD231PS  Y14, Y1, Y3           \
	VBROADCASTSS woff(R8)(AX*1), Y15   \
	VFMADD231PS  Y15, Y0, Y4           \
	VFMADD231PS  Y15, Y1, Y5           \
	VBROADCASTSS woff(R9)(AX*1), Y14   \
	VFMADD231PS  Y14, Y0, Y6           \
	VFMADD231PS  Y14, Y1, Y7           \
	VBROADCASTSS woff(R10)(AX*1), Y15  \
	VFMADD231PS  Y15, Y0, Y8           \
	VFMADD231PS  Y15, Y1, Y9           \
	VBROADCASTSS woff(R11)(AX*1), Y14  \
	VFMADD231PS  Y14, Y0, Y10          \
	VFMADD231PS  Y14, Y1, Y11          \
	VBROADCASTSS woff(R12)(AX*1), Y15  \
	VFMADD231PS  Y15, Y0, Y12          \
	VFMADD231PS  Y15, Y1, Y13

// ZERO12 clears the accumulators Y2–Y13.
#define ZERO12 \
	VXORPS Y2, Y2, Y2    \
	VXORPS Y3, Y3, Y3    \
	VXORPS Y4, Y4, Y4    \
	VXORPS Y5, Y5, Y5    \
	VXORPS Y6, Y6, Y6    \
	VXORPS Y7, Y7, Y7    \
	VXORPS Y8, Y8, Y8    \
	VXORPS Y9, Y9, Y9    \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
	VXORPS Y12, Y12, Y12 \
	VXORPS Y13, Y13, Y13

// STORE12(off) writes the accumulators of the six rows into t (DI), row r
// at DI + 128·r + off: a half of each row of 32 results.
#define STORE12(off) \
	VMOVUPS Y2, off(DI)      \
	VMOVUPS Y3, off+32(DI)   \
	VMOVUPS Y4, off+128(DI)  \
	VMOVUPS Y5, off+160(DI)  \
	VMOVUPS Y6, off+256(DI)  \
	VMOVUPS Y7, off+288(DI)  \
	VMOVUPS Y8, off+384(DI)  \
	VMOVUPS Y9, off+416(DI)  \
	VMOVUPS Y10, off+512(DI) \
	VMOVUPS Y11, off+544(DI) \
	VMOVUPS Y12, off+640(DI) \
	VMOVUPS Y13, off+672(DI)

// func mulPanel6AVX2(t *float32, w *float32, in int, xp *float32)
//
// mulPanel6AVX512 in 16 ymm registers: the 6×32 tile is two 6×16 halves,
// each a pass over k with its 12 accumulators (Y2–Y13), the two column
// registers of the panel's row (Y0, Y1) and two broadcasts (Y14, Y15);
// a step is 8 loads for 12 FMAs, so the FMA units, not the loads, set the
// pace. The second pass reads the six rows of w again, from L1 or L2
// (6·in floats: 7 KB at in = 288, 96 KB at 4096).
//
// SI, R8–R12 point at the ends of the six rows and AX runs from −4·in up
// to 0, so one index serves all six and the loop, two steps a turn (one
// step first when in is odd), adds three registers where one step a turn
// with six row pointers added eight per step (up to 10% faster on a
// 288-wide tile in L2). Both passes prefetch the next six rows (R13), half
// a cache line per turn (each line asked twice): all of them asked in the
// first pass, a line a turn, ran the output head's 32000×288 weights,
// streamed from memory, at 75-80 GFLOP/s a core against 89 from the cache
// (2.8 GHz, the FMA units' peak); spread over both, at 83-85.
TEXT ·mulPanel6AVX2(SB), NOSPLIT, $0-32
	MOVQ t+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ in+16(FP), CX
	MOVQ CX, BX
	SHLQ $2, BX
	ADDQ BX, SI
	LEAQ (SI)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R11
	LEAQ (R11)(BX*1), R12
	MOVQ R12, R13
	NEGQ BX

	MOVQ BX, AX
	MOVQ xp+24(FP), DX
	ZERO12
	TESTQ $1, CX
	JZ    lo
	ROW6_STEP(0, 0)
	ADDQ  $128, DX
	ADDQ  $4, AX
	JZ    lodone

lo:
	PREFETCHT0 (R13)
	ROW6_STEP(0, 0)
	ROW6_STEP(128, 4)
	ADDQ $32, R13
	ADDQ $256, DX
	ADDQ $8, AX
	JNZ  lo

lodone:
	STORE12(0)

	MOVQ BX, AX
	MOVQ xp+24(FP), DX
	ZERO12
	TESTQ $1, CX
	JZ    hi
	ROW6_STEP(64, 0)
	ADDQ  $128, DX
	ADDQ  $4, AX
	JZ    hidone

hi:
	PREFETCHT0 (R13)
	ROW6_STEP(64, 0)
	ROW6_STEP(192, 4)
	ADDQ $32, R13
	ADDQ $256, DX
	ADDQ $8, AX
	JNZ  hi

hidone:
	STORE12(64)
	VZEROUPPER
	RET

// TRANSPOSE8 loads the 8×8 block of src at SI, rows CX bytes apart, and
// leaves its transpose in Y0–Y7 (output row m in Ym). Register Yi (i < 4)
// holds the first four columns of rows i and i+4, one per 128-bit lane,
// and Y(i+4) their last four; the unpacks of float pairs, then of double
// pairs, transpose each lane's 4×4 block, which leaves output row m whole
// in one register: no shuffle across lanes. Clobbers DX, R8 and Y8–Y15.
#define TRANSPOSE8 \
	LEAQ (CX)(CX*2), DX \
	LEAQ (SI)(CX*4), R8 \
	VMOVUPS     (SI), X0 \
	VINSERTF128 $1, (R8), Y0, Y0 \
	VMOVUPS     16(SI), X4 \
	VINSERTF128 $1, 16(R8), Y4, Y4 \
	VMOVUPS     (SI)(CX*1), X1 \
	VINSERTF128 $1, (R8)(CX*1), Y1, Y1 \
	VMOVUPS     16(SI)(CX*1), X5 \
	VINSERTF128 $1, 16(R8)(CX*1), Y5, Y5 \
	VMOVUPS     (SI)(CX*2), X2 \
	VINSERTF128 $1, (R8)(CX*2), Y2, Y2 \
	VMOVUPS     16(SI)(CX*2), X6 \
	VINSERTF128 $1, 16(R8)(CX*2), Y6, Y6 \
	VMOVUPS     (SI)(DX*1), X3 \
	VINSERTF128 $1, (R8)(DX*1), Y3, Y3 \
	VMOVUPS     16(SI)(DX*1), X7 \
	VINSERTF128 $1, 16(R8)(DX*1), Y7, Y7 \
	VUNPCKLPS   Y1, Y0, Y8 \
	VUNPCKHPS   Y1, Y0, Y9 \
	VUNPCKLPS   Y3, Y2, Y10 \
	VUNPCKHPS   Y3, Y2, Y11 \
	VUNPCKLPS   Y5, Y4, Y12 \
	VUNPCKHPS   Y5, Y4, Y13 \
	VUNPCKLPS   Y7, Y6, Y14 \
	VUNPCKHPS   Y7, Y6, Y15 \
	VUNPCKLPD   Y10, Y8, Y0 \
	VUNPCKHPD   Y10, Y8, Y1 \
	VUNPCKLPD   Y11, Y9, Y2 \
	VUNPCKHPD   Y11, Y9, Y3 \
	VUNPCKLPD   Y14, Y12, Y4 \
	VUNPCKHPD   Y14, Y12, Y5 \
	VUNPCKLPD   Y15, Y13, Y6 \
	VUNPCKHPD   Y15, Y13, Y7

// func transpose8AVX2(dst *float32, ldd int, src *float32, lds int)
//
// dst[m·ldd + i] = src[i·lds + m] for i, m < 8 (TRANSPOSE8).
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	SHLQ $2, BX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), CX
	SHLQ $2, CX
	TRANSPOSE8
	LEAQ        (BX)(BX*2), DX
	LEAQ        (DI)(BX*4), R8
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, (DI)(BX*1)
	VMOVUPS     Y2, (DI)(BX*2)
	VMOVUPS     Y3, (DI)(DX*1)
	VMOVUPS     Y4, (R8)
	VMOVUPS     Y5, (R8)(BX*1)
	VMOVUPS     Y6, (R8)(BX*2)
	VMOVUPS     Y7, (R8)(DX*1)
	VZEROUPPER
	RET

// func transpose8RowsAVX2(dst *[8]*float32, off int, src *float32, lds int)
//
// transpose8AVX2 with each output row at a pointer of its own:
// dst[m][off + i] = src[i·lds + m] for i, m < 8, so that a panel product's
// results go straight into rows that are separate buffers (an output
// head's logits), with no intermediate block to copy.
TEXT ·transpose8RowsAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), R9
	MOVQ off+8(FP), BX
	SHLQ $2, BX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), CX
	SHLQ $2, CX
	TRANSPOSE8
	MOVQ        (R9), DI
	VMOVUPS     Y0, (DI)(BX*1)
	MOVQ        8(R9), DI
	VMOVUPS     Y1, (DI)(BX*1)
	MOVQ        16(R9), DI
	VMOVUPS     Y2, (DI)(BX*1)
	MOVQ        24(R9), DI
	VMOVUPS     Y3, (DI)(BX*1)
	MOVQ        32(R9), DI
	VMOVUPS     Y4, (DI)(BX*1)
	MOVQ        40(R9), DI
	VMOVUPS     Y5, (DI)(BX*1)
	MOVQ        48(R9), DI
	VMOVUPS     Y6, (DI)(BX*1)
	MOVQ        56(R9), DI
	VMOVUPS     Y7, (DI)(BX*1)
	VZEROUPPER
	RET
